"""A sweep's saved definition (`metadata`, beside its results) and --resume: the plan rebuilt
from it, with only resource and checkpoint flags free to change."""

from __future__ import annotations

import dataclasses

from losstune.ray_jobs.flags import UsageError, flag_overrides, verbosity


# What defines a sweep, by the flag that sets it: --resume refuses a different value
DEFINING_FLAGS = {"family": "FAMILY", "space": "--space", "trials": "--trials", "search": "--search",
                  "scheduler": "--scheduler", "objective": "--objective", "grace_epochs": "--grace-epochs",
                  "startup_trials": "--startup-trials"}


DEFINING_FLAGS.update(preset="--preset", seed="--seed", smoke_test="--smoke-test")


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


def differing_paths(overrides: dict, saved: dict, prefix: str = "") -> list[str]:
    """The dotted paths at which the nested `overrides` set a value `saved` does not hold."""
    paths = []
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            paths += differing_paths(value, saved.get(key) if isinstance(saved.get(key), dict) else {}, f"{path}.")
        elif saved.get(key, object()) != value:
            paths.append(path)
    return paths


def resumed_plan(args, storage: str) -> dict:
    """--resume: the sweep's own saved definition; only resource and checkpoint flags may change."""
    from losstune.ray_jobs.results import META_FILE, SweepFolderError, exists, read_meta
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
    return {k: meta.get(k, LATER_KEYS[k]) if k in LATER_KEYS else meta[k] for k in SWEEP_KEYS} | {
        "resources": resources, "max_concurrent": args.max_concurrent,
        "max_failures": args.max_failures, "keep_checkpoints": args.keep_checkpoints, "storage": storage,
        "storage_arg": args.storage, "name": args.name, "resume": True, "verbosity": verbosity(args),
        "min_free_mb": args.min_free_mb}


SWEEP_KEYS = ("family", "space", "preset", "base", "objective", "objectives", "default_point", "epochs", "trials",
              "search", "scheduler", "seed", "grace_epochs", "startup_trials", "smoke_test")


# Keys added after the first sweeps were saved, and the value those sweeps ran with (None: unknown)
LATER_KEYS = {"objectives": [], "grace_epochs": None, "startup_trials": 10, "smoke_test": None}


def metadata(plan) -> dict:
    """What defines the sweep, saved beside it so --resume and analyze need nothing else."""
    return {k: plan[k] for k in SWEEP_KEYS} | {
        "storage": plan["storage"], "name": plan["name"], "resources": dataclasses.asdict(plan["resources"])}
