"""Named search spaces per family, and what a sweep needs from them.

A space is either a nested dict of `ray.tune` distributions over config keys, or an Optuna
define-by-run function (for conditional spaces) whose parameter names are config paths joined
by "/" (`caps/abs_max`), the form Ray's OptunaSearch unflattens into a nested config. A function
may also take the sweep's config; the family's `space(name, config)` binds it
(trainables.family_api.bound). The registry of families, each a trainable module and its space
module, is trainables/registry.py.
"""

from __future__ import annotations

from typing import Any, Callable

import optuna
from ray.tune.search.optuna import OptunaSearch

from losstune.trainables.config import get_path


def optuna_space(space: dict | Callable) -> dict | Callable:
    """What OptunaSearch takes as `space`: Optuna distributions (flat '/' names) or the function."""
    return space if callable(space) else OptunaSearch.convert_search_space(space)


def suggest_from(trial, space: dict) -> None:
    """Suggest every parameter of a ray.tune dict space inside a define-by-run function.

    Only the public suggest_* methods: Ray records a define-by-run trial's values through them.
    """
    for name, dist in optuna_space(space).items():
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, optuna.distributions.IntDistribution):
            trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
        else:
            trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)


def default_point(space: dict | Callable, config) -> dict:
    """The documented default as a point of the space: {'caps/abs_max': 16.0, ...}.

    For a define-by-run space, the function is run against a trial that answers every
    suggestion with the config's value, so its branches follow the default's choices.
    """
    trial = _DefaultTrial(config)
    if callable(space):
        space(trial)
    else:
        suggest_from(trial, space)
    return trial.params


def sample_points(space: dict | Callable, count: int, seed: int = 0) -> list[dict]:
    """Random points of a space (for validating spaces before a sweep and in tests)."""
    return [dict(trial.params) for trial in random_trials(space, count, seed)]


def random_trials(space: dict | Callable, count: int, seed: int = 0):
    """`count` finished trials of the space, sampled at random in a study of their own."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(count):
        trial = study.ask() if callable(space) else study.ask(fixed_distributions=optuna_space(space))
        if callable(space):
            space(trial)
        study.tell(trial, 0.0)
    return study.trials


def space_distributions(space: dict | Callable, count: int = 256, seed: int = 0) -> tuple[dict, set]:
    """({name: optuna distribution}, {frozenset of the names one point has}) over `count` random points:
    what a point of the space may hold, for checking hand-picked or earlier sweeps' points against it."""
    distributions, shapes = {}, set()
    for trial in random_trials(space, count, seed):
        for name, distribution in trial.distributions.items():
            distributions[name] = widened(distributions.get(name), distribution)
        shapes.add(frozenset(trial.params))
    return distributions, shapes


def widened(seen, distribution):
    """One number's range over every point: a define-by-run space may set it by an earlier choice
    (medgen_diffusion's `architecture`: each kind's width), so its points span the union."""
    if seen is None or isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return distribution
    return type(distribution)(min(seen.low, distribution.low), max(seen.high, distribution.high), log=distribution.log,
                              step=distribution.step)


def outside(distribution, value) -> str:
    """Why `value` is not a value of the Optuna `distribution` ("" where it is)."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return "" if value in distribution.choices else f"not one of {list(distribution.choices)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"not a number between {distribution.low} and {distribution.high}"
    return "" if distribution.low <= value <= distribution.high else (
        f"outside [{distribution.low}, {distribution.high}]")


class _DefaultTrial:
    """Stands in for an optuna.Trial: every suggest_* returns the default config's value."""

    def __init__(self, config):
        self._config = config
        self.params: dict[str, Any] = {}

    def suggest(self, name, *args, **kwargs):
        value = get_path(self._config, name)
        value = list(value) if isinstance(value, tuple) else value
        self.params[name] = value
        return value

    suggest_float = suggest_int = suggest_categorical = suggest
