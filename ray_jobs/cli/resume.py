"""--resume: the plan rebuilt from a sweep's saved definition (plan.metadata, beside its results),
with only resource and checkpoint flags free to change."""

from __future__ import annotations

import dataclasses
import os

from losstune.ray_jobs.cli.bounds import check_local_resources
from losstune.ray_jobs.core.usage import UsageError
from losstune.ray_jobs.cli.flags import check_storage_answers, flag_overrides, verbosity
from losstune.ray_jobs.core.plan import DEFINING_FLAGS, POPULATION_SCHEDULERS, SweepPlan, definition
from losstune.trainables.config import flatten
from losstune.ray_jobs.core.storage import exists, join, listing, parent_and_name
from losstune.trainables.family_api import DEFAULT_MIN_EFFECT, make_config
from losstune.trainables.registry import load_family


RESOURCE_FLAGS = {"workers_per_trial": "workers", "cpus_per_worker": "cpus_per_worker",
                  "gpus_per_worker": "gpus_per_worker", "driver_cpus": "driver_cpus"}


def check_resume_flags(args, meta: dict) -> None:
    """A resumed sweep runs its saved definition: a flag given with --resume must agree with it
    (--trials apart: extra_trials)."""
    for dest, flag in DEFINING_FLAGS.items():
        if dest not in args.given:
            continue
        saved = meta.get(dest)
        if dest == "smoke_test" and saved is None:
            continue  # a sweep saved before smoke_test was: its base config is checked below
        if dest == "objective":  # saved as the objectives list; "pareto" where there are several
            saved, given = ("pareto" if meta.get("objectives") else "scalar"), args.objective
        else:
            given = getattr(args, dest)
        if given != saved:
            raise UsageError(f"{flag}: sweep {args.name!r} was started with {saved!r}, got {given!r}; a resumed sweep "
                             "keeps its own definition (start a new sweep to change it)")
    # --smoke-test's sizes are not compared here: the sweep's own --epochs or --set may have
    # overridden them, and the flag itself was compared above
    for path in differing_paths(flag_overrides(args), meta["base"]):
        flag = {"train.epochs": "--epochs", "data.path": "--data"}.get(path, "--set")
        raise UsageError(f"{flag}: {path} differs from the config sweep {args.name!r} was started with; a resumed "
                         "sweep keeps its own config (start a new sweep to change it)")


def extra_trials(args, meta: dict) -> int:
    """--resume --trials N: how many trials to add to a finished sweep of fewer (0: none asked)."""
    if "trials" not in args.given or args.trials == meta["trials"]:
        return 0
    if not meta.get("finished"):
        raise UsageError(f"--trials: sweep {args.name!r} has not finished its {meta['trials']} trials; resume it "
                         "without --trials first, then extend it")
    if args.trials < meta["trials"]:
        raise UsageError(f"--trials: sweep {args.name!r} ran {meta['trials']} trials; --trials with --resume can only "
                         f"add to them, got {args.trials}")
    return args.trials - meta["trials"]


def differing_paths(overrides: dict, saved: dict) -> list[str]:
    """The dotted paths at which the nested `overrides` set a value `saved` does not hold."""
    saved_values = flatten(saved, ".")
    return [path for path, value in flatten(overrides, ".").items() if saved_values.get(path, object()) != value]


def resumed_plan(args, storage: str) -> SweepPlan:
    """--resume: the sweep's own saved definition; only resource and checkpoint flags may change."""
    # here, not at the top: loads torch, ray, optuna and more only where this runs
    from losstune.ray_jobs.results.tables import META_FILE, SweepFolderError, read_meta
    from losstune.trainables.engine.driver import TrialResources

    if not args.name:
        raise UsageError("--resume: needs --name of the sweep to continue")
    check_storage_answers(storage)
    if not exists(join(storage, args.name, META_FILE)):
        raise UsageError(f"--resume: no sweep {args.name!r} in {storage}")
    try:
        meta = read_meta(join(storage, args.name))
    except SweepFolderError as err:
        raise UsageError(f"--resume: {err}") from None
    check_resume_flags(args, meta)
    check_resumable(join(storage, args.name), meta)
    extend_by = extra_trials(args, meta)
    saved_resources = TrialResources.saved(meta["resources"])
    resources = dataclasses.replace(saved_resources, **{
        field: getattr(args, dest) for dest, field in RESOURCE_FLAGS.items() if dest in args.given})
    check_same_trial_process(saved_resources, resources, args)
    check_local_resources(resources)
    saved = definition(meta)
    if extend_by:
        saved |= {"trials": args.trials, "extensions": [*saved["extensions"], f"extend{len(saved['extensions']) + 1}"]}
    return SweepPlan(**saved, extend_by=extend_by, name=args.name, storage=storage, storage_arg=args.storage,
                     resources=resources, max_concurrent=args.max_concurrent, max_failures=args.max_failures,
                     keep_checkpoints=args.keep_checkpoints, resume=True, verbosity=verbosity(args),
                     min_free_mb=args.min_free_mb, **confirm_flags(args, meta))


def confirm_flags(args, meta: dict) -> dict:
    """The sweep's own confirmation as it was started (its saved settings), each flag given with
    --resume taking its place: a sweep started with --confirm-top 0 and resumed ran the default
    confirmation before. Sweeps saved before these settings: the flags' values."""
    saved = meta.get("confirm", {})
    flags = {"confirm_top": ("top", args.confirm_top), "confirm_seeds": ("seeds", args.confirm_seeds),
             "max_seeds": ("max_seeds", args.max_seeds), "min_effect": ("min_effect", args.min_effect)}
    chosen = {field: value if field in args.given else saved.get(key, value) for field, (key, value) in flags.items()}
    return chosen | {"min_effect": chosen["min_effect"] or documented_min_effect(meta)}


def check_resumable(experiment: str, meta: dict) -> None:
    """What Tune and Optuna restore a sweep from, there before Ray starts: without its experiment
    state Tune started the sweep afresh and rewrote its results (the default's trial dropped out),
    without tuner.pkl or the study's journal a traceback came after a new trial ran."""
    # here, not at the top: loads ray, optuna, pandas only where this runs
    from losstune.ray_jobs.results.study import STUDY_FILE
    from losstune.ray_jobs.search.study_journal import study_journal

    runs = [experiment, *[join(experiment, name) for name in meta.get("extensions", [])]]
    for run in runs:
        names = [info.base_name for info in listing(run)]
        lacks = [file for file, there in (("tuner.pkl", "tuner.pkl" in names), ("experiment_state-*.json", any(
            n.startswith("experiment_state-") and n.endswith(".json") for n in names))) if not there]
        if lacks:
            raise UsageError(f"--resume: {run} lacks {' and '.join(lacks)}: Tune cannot resume the sweep as it was")
    if meta.get("scheduler") in POPULATION_SCHEDULERS:
        return  # PBT samples without an Optuna study
    storage, name = parent_and_name(experiment)
    if not os.path.exists(study_journal(storage, name)) and not exists(join(experiment, STUDY_FILE)):
        raise UsageError(f"--resume: {join(experiment, STUDY_FILE)} is missing: the Optuna study cannot resume")


def check_same_trial_process(saved, resumed, args) -> None:
    """A resumed trial trains where it trained before: its checkpoints are there (Tune's for a trial
    in its own process, its Train run's for one in a worker group)."""
    if args.worker_group and not saved.worker_group:
        raise UsageError("--worker-group: this sweep's trials train in their own process; --resume keeps that")
    if resumed.in_trial_process != saved.in_trial_process:
        where = "in their own process" if saved.in_trial_process else f"in worker groups of {saved.workers}"
        raise UsageError(f"--workers-per-trial: this sweep's trials train {where}, where their checkpoints are; "
                         f"--resume keeps that")


def documented_min_effect(meta: dict) -> str:
    """The minimum effect the saved sweep's objective declares (trainables.family_api.Objective)."""
    family = load_family(meta["family"])
    declared = family.objective_of(make_config(family, meta["base"]))
    return declared.min_effect if declared.metric == meta["objective"]["metric"] else DEFAULT_MIN_EFFECT
