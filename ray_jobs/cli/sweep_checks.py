"""A sweep's space checked against its search, its scheduler, its --enqueue points and its data,
before Ray starts: what cannot work together is a UsageError naming the flag (ray_jobs/cli/sweep_flags.py
makes the plan)."""

from __future__ import annotations

import sys

from losstune.ray_jobs.core.usage import UsageError
from losstune.ray_jobs.core.plan import POPULATION_SCHEDULERS, inert_weights, space_choices
from losstune.ray_jobs.search.prior_points import read_enqueued
from losstune.trainables.config import ConfigError, flatten, merge, unflatten
from losstune.trainables.family_api import check_batches_fit, checked_data, make_config
from losstune.search_spaces import default_point, sample_points, space_distributions
import optuna


def check_population(args, space, space_name: str) -> None:
    """PBT / PB2 mutate a space of ray.tune distributions and sample their first population at
    random; what they cannot honour is refused in one line, before Ray starts."""
    # here, not at the top: loads ray, scipy only where this runs
    from losstune.ray_jobs.search.population import bounds

    if args.scheduler not in POPULATION_SCHEDULERS:
        if args.population_sync:
            raise UsageError(f"--population-sync: only --scheduler pbt or pb2 perturb a population, got "
                             f"--scheduler {args.scheduler}")
        return
    flag = f"--scheduler {args.scheduler}"
    if callable(space):
        raise UsageError(f"{flag}: space {space_name!r} is define-by-run (branches), which PBT cannot mutate; "
                         "use a space of distributions, e.g. --space schedule")
    if args.scheduler == "pb2" and not bounds(space):
        raise UsageError(f"{flag}: space {space_name!r} has no continuous parameter for PB2 to model; use --scheduler pbt")
    if "search" in args.given and args.search != "random":
        raise UsageError(f"--search {args.search}: {flag} samples its first population at random and then "
                         "mutates it; Tune takes no model-based searcher beside it (pass --search random or leave it out)")
    if args.warm_start:
        raise UsageError(f"--warm-start: {flag} has no Optuna study to give earlier trials to")
    if "confirm_top" in args.given and args.confirm_top:
        raise NotImplementedError(f"--confirm-top: a {args.scheduler} trial followed a schedule that changed mid-run; "
                                  "rerunning its final config from scratch would not confirm it (pass --confirm-top 0)")


# samplers that model a fixed set of numeric parameters: a choice or a branch is refused for them
CONTINUOUS_ONLY = {"gp": "GP", "cmaes": "CMA-ES"}


def check_search_fits_space(search: str, space, space_name: str) -> None:
    """GP and CMA-ES model one fixed vector of numbers: a space with a categorical parameter or
    with branches (parameters only some points have) is refused, naming them."""
    if search not in CONTINUOUS_ONLY:
        return
    distributions, shapes = space_distributions(space)
    choices = sorted(n for n, d in distributions.items() if isinstance(d, optuna.distributions.CategoricalDistribution))
    sometimes = sorted(set(distributions) - frozenset.intersection(*shapes)) if shapes else []
    why = (f"categorical parameters ({', '.join(choices)})" if choices else
           f"parameters that only some points have ({', '.join(sometimes)})" if sometimes else "")
    if why:
        raise UsageError(f"--search {search}: space {space_name!r} has {why}, which {CONTINUOUS_ONLY[search]} cannot "
                         "model; use --search optuna (TPE)")


def check_search_flags(args, pareto) -> None:
    """--search prior models one objective; --prior-confidence belongs to it, --startup to TPE."""
    given = getattr(args, "given", set())
    if args.search == "prior" and pareto:
        raise UsageError("--search prior: piBO searches one objective; this family's are several (pass --objective "
                         "scalar, or use --search optuna for their Pareto front)")
    if "prior_confidence" in given and args.search != "prior":
        raise UsageError(f"--prior-confidence: only --search prior has a prior (got --search {args.search})")
    if "startup" in given and args.search not in ("optuna", "optuna-grouped"):
        raise UsageError(f"--startup: TPE's start-up (--search optuna or optuna-grouped; got --search {args.search})")


def check_enqueued(family, space_name: str, base: dict, config, args) -> list[dict]:
    """--enqueue's points, each checked against the space and as a whole config; with the default
    they must fit in --trials."""
    if not args.enqueue:
        return []
    points = read_enqueued(args.enqueue, family.space(space_name, config), space_name)
    for number, point in enumerate(points, 1):
        try:
            make_config(family, merge(base, unflatten(point)))
        except ConfigError as err:
            raise UsageError(f"--enqueue: {args.enqueue} config {number}: {err}") from None
    if len(points) + 1 > args.trials:
        raise UsageError(f"--enqueue: {len(points)} configs and the documented default are more than --trials "
                         f"{args.trials}")
    return points


def check_space(family, space_name: str, base: dict, config, seed: int, pinned: dict) -> dict:
    """The space's documented-default point, after checking that every sampled value makes a valid
    config and every batch size fills a batch of the data; warns about tuned weights of terms that
    are off, and about --set keys (`pinned`) that the space searches. (--config's keys are not
    warned about: a base config that the first trial runs, e.g. an earlier best, is what it is for.)"""
    space = family.space(space_name, config)
    point = default_point(space, config)
    points = [point] + sample_points(space, 32, seed)
    searched = sorted(set(flatten(pinned)) & {key for p in points for key in p})
    if searched:  # the default point reads the config, every sampled point overrides it
        print(f"sweep: warning: --space {space_name} searches {', '.join(k.replace('/', '.') for k in searched)}: "
              "--set gives it for the first (default) trial only; to keep it in every "
              "trial, --enqueue points with it or pick a space that does not search it", file=sys.stderr)
    sampled = [make_config(family, merge(base, unflatten(p))) for p in points]
    check_batches_fit(checked_data(family, config), {
        "the sweep's config": config.train.batch_size,
        f"--space {space_name} samples it": max([c.train.batch_size for c in sampled] + space_choices(space))})
    inert = inert_weights(family, config, points)
    if inert:
        print(f"sweep: warning: --space {space_name} tunes weights of terms that are off, so their samples change "
              f"nothing: {inert}", file=sys.stderr)
    return point
