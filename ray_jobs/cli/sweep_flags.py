"""The sweep's command line: its flags (defined in ray_jobs/cli/sweep_parser.py), their checks, and the SweepPlan they make,
all before Ray starts (the checks of the space, the search and the population against each other:
ray_jobs/cli/sweep_checks.py). A bad flag, field or file is a UsageError / ConfigError / DataError with a
one-line message naming it. Used by ray_jobs/sweep.py and by the benchmarks, which run sweeps
through the same plan."""

from __future__ import annotations

import argparse
import time

from losstune.ray_jobs.cli.flags import (check_at_least, check_seeds, check_min_effect, check_name,
                                         check_storage_answers, check_worker_shares, flag_overrides, parse_set,
                                         read_config_file, verbosity)
from losstune.ray_jobs.cli.sweep_parser import make_parser
from losstune.ray_jobs.core.usage import UsageError
from losstune.ray_jobs.cli.bounds import (MAX_EPOCHS, MAX_SEED, MAX_TRIALS, check_data_path, trial_resources,
                                      check_min_free, check_ray_address, check_storage_text, check_upper_bounds)
from losstune.ray_jobs.core.plan import POPULATION_SCHEDULERS, SweepPlan, scheduler_overrides, startup_trials
from losstune.ray_jobs.search.prior_points import read_warm_start
from losstune.ray_jobs.cli.resume import resumed_plan
from losstune.ray_jobs.cli.sweep_checks import (check_enqueued, check_population, check_search_fits_space,
                                          check_search_flags, check_space)
from losstune.ray_jobs.core.storage import absolute, exists, join
from losstune.trainables.config import ConfigError, merge
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family
from losstune.trainables.engine.loop_config import check_precision




def parse_args(argv=None, description: str = "") -> argparse.Namespace:
    """The flags, with `given`: the names of those the command line set (a resumed sweep checks
    them against its saved definition). `description`: the --help text (the sweep's docstring)."""
    args = make_parser(description).parse_args(argv)
    quiet = make_parser(description)
    for action in quiet._actions:  # parsed again with no defaults: only what was given remains
        action.default = argparse.SUPPRESS
    args.given = set(vars(quiet.parse_args(argv)))
    return args


def check_flags(args) -> None:
    """Each flag on its own, before any file is read or Ray started: counts positive and within
    sense, resource shares not negative, names that make one folder, the storage and its free-space
    floor, --data's kind of file, and RAY_ADDRESS (an address, and something answering there)."""
    check_at_least(("--trials", args.trials, 1), ("--epochs", args.epochs, 1), ("--grace-epochs", args.grace_epochs, 1),
                   ("--startup-trials", args.startup_trials, 1), ("--workers-per-trial", args.workers_per_trial, 1),
                   ("--max-concurrent", args.max_concurrent, 1), ("--keep-checkpoints", args.keep_checkpoints, 1),
                   ("--max-failures", args.max_failures, -1), ("--driver-cpus", args.driver_cpus, 0),
                   ("--seed", args.seed, 0), ("--confirm-top", args.confirm_top, 0))
    check_seeds("--confirm-seeds", args.confirm_seeds, args.max_seeds)
    check_upper_bounds(("--trials", args.trials, MAX_TRIALS), ("--epochs", args.epochs, MAX_EPOCHS),
                       ("--seed", args.seed, MAX_SEED), ("--grace-epochs", args.grace_epochs, MAX_EPOCHS))
    check_worker_shares(args.cpus_per_worker, args.gpus_per_worker)
    check_name("--name", args.name)
    check_min_effect(args.min_effect)
    check_storage_text(args.storage)
    check_min_free(args.min_free_mb, args.storage, given="min_free_mb" in getattr(args, "given", ()))
    check_data_path(args.data)
    check_ray_address()


def base_overrides(family, args) -> dict:
    """The overrides every trial's config is built from (trials add their sampled point): the
    preset, --config, the smoke-test sizes, the seed, then the command line's flags, later ones
    winning."""
    make_config(family, preset=args.preset or "")  # an unknown preset fails here, before anything else
    base = dict(family.presets[args.preset]) if args.preset else {}
    if args.config:
        base = merge(base, config_file_of(family, args.config))
    if args.smoke_test:
        base = merge(base, family.smoke)
    base = merge(base, {"train": {"seed": args.seed}})
    return merge(base, flag_overrides(args))


def config_file_of(family, path: str) -> dict:
    """--config's overrides, checked as a config of this family on their own: a file of another
    family is named as one (its first foreign key was said without the file)."""
    overrides = read_config_file(path)
    try:
        make_config(family, overrides)
    except ConfigError as err:
        raise UsageError(f"--config: {path} is not a {family.name} config: {err}") from None
    return overrides


def make_plan(args) -> SweepPlan:
    """Everything the sweep needs, validated before Ray starts. Raises ConfigError / DataError /
    UsageError with a one-line message."""
    storage = absolute(args.storage)
    check_flags(args)  # a resumed sweep takes its resource and checkpoint flags from the command line too
    if args.resume:
        for flag, given in (("--config", args.config), ("--enqueue", args.enqueue), ("--warm-start", args.warm_start)):
            if given:
                raise UsageError(f"{flag}: a resumed sweep keeps what it was started with")
        return checked_tracking(resumed_plan(args, storage))
    family = load_family(args.family)
    space_name = args.space or family.default_space
    if space_name not in family.spaces:
        raise UsageError(f"--space: unknown space {space_name!r} for {args.family} (known: {', '.join(family.spaces)})")
    if args.objective == "pareto" and not family.objectives:
        raise UsageError(f"--objective: {args.family} declares a single objective ({family.objective.metric})")
    pareto = family.objectives if args.objective != "scalar" else ()
    base = base_overrides(family, args)
    config = make_config(family, base)
    if pareto and args.scheduler in POPULATION_SCHEDULERS:  # it ranked by the scalar one without a word
        raise UsageError(f"--objective: --scheduler {args.scheduler} ranks its population by one objective and "
                         f"{args.family} declares several; give --objective scalar (it then ranks by "
                         f"{family.objective_of(config).metric})")
    check_precision(config.train, has_gpu=args.gpus_per_worker > 0)
    point = check_space(family, space_name, base, config, args.seed, pinned=parse_set(args.set))
    space = family.space(space_name, config)
    check_population(args, space, space_name)  # first: PBT takes no --search
    check_search_fits_space(args.search, space, space_name)
    check_search_flags(args, pareto)
    base = merge(base, scheduler_overrides(args.scheduler, grace_epochs(args, config)))
    pareto_list = [{"metric": o.metric, "mode": o.mode} for o in pareto]
    ranked_by = family.objective_of(config)
    objective = {"metric": ranked_by.metric, "mode": ranked_by.mode}
    enqueued = check_enqueued(family, space_name, base, config, args)
    priors, warm_start = warm_start_priors(args, space, objective, pareto_list)
    population = args.scheduler in POPULATION_SCHEDULERS
    resources = trial_resources(args)
    name = new_sweep_name(args, storage, space_name)
    return checked_tracking(SweepPlan(
        family=args.family, space=space_name, preset=args.preset or "", base=base, objective=objective,
        objectives=pareto_list, default_point=point, enqueued=enqueued, warm_start=warm_start, priors=priors,
        epochs=config.train.epochs, trials=args.trials, search="random" if population else args.search,
        scheduler=args.scheduler,
        seed=args.seed, smoke_test=args.smoke_test, startup_trials=args.startup_trials or startup_trials(args.trials),
        grace_epochs=grace_epochs(args, config), population_sync=args.population_sync,
        name=name, storage=storage, storage_arg=args.storage,
        resources=resources, max_concurrent=args.max_concurrent, max_failures=args.max_failures, keep_checkpoints=args.keep_checkpoints,
        verbosity=verbosity(args), min_free_mb=args.min_free_mb, confirm_top=0 if population else args.confirm_top,
        confirm_seeds=args.confirm_seeds, max_seeds=args.max_seeds, min_effect=args.min_effect or ranked_by.min_effect,
        mlflow=args.mlflow, callbacks=args.callbacks, prior_confidence=args.prior_confidence, startup=args.startup))


def warm_start_priors(args, space, objective: dict, pareto: list[dict]) -> tuple[list[dict], dict | None]:
    """--warm-start: the earlier sweep's trials that fit this space, and what the plan records of them."""
    if not args.warm_start:
        return [], None
    here = {"family": args.family, "objective": objective, "objectives": pareto}
    # CMA-ES knows no constraints: to it a health-stopped trial is FAIL, which it ignores (tuning.py)
    priors, completed = read_warm_start(args.warm_start, here, space, unhealthy=args.search != "cmaes")
    stopped = sum("stop_reason" in p for p in priors)
    return priors, {"sweep": absolute(args.warm_start.rstrip("/")), "used": len(priors) - stopped,
                    "unhealthy": stopped, "completed": completed}


def new_sweep_name(args, storage: str, space_name: str) -> str:
    """--name, or one made of the family, space and time; refused where that sweep exists."""
    name = args.name or f"{args.family}-{space_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_storage_answers(storage)
    if exists(join(storage, name)):
        raise UsageError(f"--name: sweep {name!r} already exists in {storage}; pass --resume or a new --name")
    return name


def checked_tracking(plan: SweepPlan) -> SweepPlan:
    """The plan, once MLflow is there where asked for and every --callback can be made (UsageError)."""
    # here, not at the top: loads ray, mlflow, scipy only where this runs
    from losstune.ray_jobs.search.tracking import check_mlflow, tracking_uri, user_callbacks

    check_mlflow(plan.mlflow)
    if plan.mlflow is not None:
        tracking_uri(plan.mlflow, plan.experiment)
    user_callbacks(plan.callbacks)
    return plan


def grace_epochs(args, config) -> int:
    """ASHA's grace period, PBT's perturbation interval: --grace-epochs, or a quarter of the epochs."""
    epochs = config.train.epochs
    if args.grace_epochs and args.grace_epochs > epochs:  # no rung or perturbation would ever come
        raise UsageError(f"--grace-epochs: {args.grace_epochs} is more than the {epochs} epochs a trial runs "
                         f"(train.epochs); give at most {epochs}")
    return args.grace_epochs or max(1, epochs // 4)
