"""--resume: the plan rebuilt from a sweep's saved definition (plan.metadata, beside its results),
with only resource and checkpoint flags free to change."""

from __future__ import annotations

import dataclasses

from losstune.ray_jobs.flags import UsageError, flag_overrides, verbosity
from losstune.ray_jobs.plan import SweepPlan, definition
from losstune.trainables.config import flatten


# What defines a sweep, by the flag that sets it: --resume refuses a different value
DEFINING_FLAGS = {"family": "FAMILY", "space": "--space", "trials": "--trials", "search": "--search",
                  "scheduler": "--scheduler", "objective": "--objective", "grace_epochs": "--grace-epochs",
                  "startup_trials": "--startup-trials", "preset": "--preset", "seed": "--seed",
                  "smoke_test": "--smoke-test"}


RESOURCE_FLAGS = {"workers_per_trial": "workers", "cpus_per_worker": "cpus_per_worker",
                  "gpus_per_worker": "gpus_per_worker", "driver_cpus": "driver_cpus"}


def check_resume_flags(args, meta: dict) -> None:
    """A resumed sweep runs its saved definition: a flag given with --resume must agree with it.
    (--trials cannot grow a sweep: Tune restores its search with the saved count.)"""
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


def differing_paths(overrides: dict, saved: dict) -> list[str]:
    """The dotted paths at which the nested `overrides` set a value `saved` does not hold."""
    saved_values = flatten(saved, ".")
    return [path for path, value in flatten(overrides, ".").items() if saved_values.get(path, object()) != value]


def resumed_plan(args, storage: str) -> SweepPlan:
    """--resume: the sweep's own saved definition; only resource and checkpoint flags may change."""
    from losstune.ray_jobs.results import META_FILE, SweepFolderError, read_meta
    from losstune.ray_jobs.storage import exists
    from losstune.trainables.driver import TrialResources

    if not args.name:
        raise UsageError("--resume: needs --name of the sweep to continue")
    if not exists(f"{storage}/{args.name}/{META_FILE}"):
        raise UsageError(f"--resume: no sweep {args.name!r} in {storage}")
    try:
        meta = read_meta(f"{storage}/{args.name}")
    except SweepFolderError as err:
        raise UsageError(f"--resume: {err}") from None
    check_resume_flags(args, meta)
    resources = dataclasses.replace(TrialResources(**meta["resources"]), **{
        field: getattr(args, dest) for dest, field in RESOURCE_FLAGS.items() if dest in args.given})
    return SweepPlan(**definition(meta), name=args.name, storage=storage, storage_arg=args.storage,
                     resources=resources, max_concurrent=args.max_concurrent, max_failures=args.max_failures,
                     keep_checkpoints=args.keep_checkpoints, resume=True, verbosity=verbosity(args),
                     min_free_mb=args.min_free_mb, confirm_top=args.confirm_top, confirm_seeds=args.confirm_seeds)
