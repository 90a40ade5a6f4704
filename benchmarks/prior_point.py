"""python benchmarks/prior_point.py [--space all] [--told 40] [--asked 15] [--repeats 2]

Seconds per point of `--search prior` (piBO through SMAC3, ray_jobs/search/prior_search.py) on a
hdr_patch space after --told finished trials: with the sweep's fast paths
(ray_jobs/search/smac_fast_paths.py: the flat space's sampling, the normal prior's density, the
forest's predictions without joblib) against ConfigSpace's and SMAC's own steps. Both in one run,
alternating, so the machine's load falls on both alike.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import optuna
from ConfigSpace import ConfigurationSpace
from ConfigSpace.hyperparameters import NormalFloatHyperparameter
from smac.model.random_forest.random_forest import EPMRandomForest

from losstune.ray_jobs.search import smac_fast_paths as fast
from losstune.ray_jobs.search.prior_search import PriorSampler
from losstune.search_spaces import default_point, space_distributions
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family

FAST_PATHS = ((fast.FlatSpace, "sample_configuration", ConfigurationSpace),
              (fast.NormalFloat, "pdf_vector", NormalFloatHyperparameter),
              (fast.Trees, "all_trees_pred", EPMRandomForest))


@contextlib.contextmanager
def library_steps():
    """The fast paths' classes computing through their libraries' own methods."""
    saved = [(cls, name, cls.__dict__[name]) for cls, name, _ in FAST_PATHS]
    for cls, name, library in FAST_PATHS:
        setattr(cls, name, getattr(library, name))
    try:
        yield
    finally:
        for cls, name, method in saved:
            setattr(cls, name, method)


def seconds_per_point(space_name: str, told: int, asked: int) -> float:
    """The mean seconds of the `asked` points after `told` trials, each told a made-up objective."""
    family = load_family("hdr_patch")
    config = make_config(family, {})
    space = family.space(space_name, config)
    distributions, _ = space_distributions(space)
    study = optuna.create_study(sampler=PriorSampler(distributions, default_point(space, config), trials=64,
                                                     startup_trials=4, seed=0))
    seconds = []
    for _ in range(told + asked):
        started = time.perf_counter()
        trial = study.ask()
        space(trial)
        seconds.append(time.perf_counter() - started)
        # a deterministic objective of the point: any will do, the search's cost is the figure
        study.tell(trial, sum(hash(str(v)) % 97 for v in trial.params.values()) / 97)
    return sum(seconds[told:]) / asked


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    p.add_argument("--space", default="all", choices=["all", "caps"])
    p.add_argument("--told", type=int, default=40)
    p.add_argument("--asked", type=int, default=15)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for repeat in range(args.repeats):
        with library_steps():
            before = seconds_per_point(args.space, args.told, args.asked)
        after = seconds_per_point(args.space, args.told, args.asked)
        print(f"hdr_patch `{args.space}`, s per point after {args.told} trials (mean of {args.asked}), repeat "
              f"{repeat}: the libraries' steps {before:.2f}, the sweep's fast paths {after:.2f}: "
              f"{before / after:.2f}x", flush=True)


if __name__ == "__main__":
    main()
