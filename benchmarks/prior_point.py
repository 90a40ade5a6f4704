"""python benchmarks/prior_point.py [--space all] [--told 40] [--asked 15] [--repeats 2]

Seconds per point of `--search prior` (piBO through SMAC3, ray_jobs/search/prior_search.py) on a
hdr_patch space after --told finished trials, with the random forest as the sweep builds it (sklearn's
depth-first tree builder, max_leaf_nodes None) against SMAC's own default (max_leaf_nodes 2**20,
which makes sklearn's best-first builder allocate room for a million nodes in every tree it fits,
about 0.1 s a tree on 40 points here). Both in one run, alternating, so the machine's load falls on
both alike; the trees they grow are the same up to the order of their random draws.
"""

from __future__ import annotations

import argparse
import time

import optuna
import smac.model.random_forest as forests

from losstune.ray_jobs.search.prior_search import PriorSampler
from losstune.search_spaces import default_point, space_distributions
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family

SMAC_DEFAULT_LEAVES = 2 ** 20
PLATFORM_INIT = forests.RandomForest.__init__


def with_leaves(leaves):
    """The random forest's constructor, its max_leaf_nodes forced to `leaves`."""
    def init(self, *args, **kwargs):
        PLATFORM_INIT(self, *args, **{**kwargs, "max_leaf_nodes": leaves})
    return init


def seconds_per_point(space_name: str, told: int, asked: int, leaves) -> float:
    """The mean seconds of the `asked` points after `told` trials, each told a made-up objective."""
    family = load_family("hdr_patch")
    config = make_config(family, {})
    space = family.space(space_name, config)
    distributions, _ = space_distributions(space)
    forests.RandomForest.__init__ = with_leaves(leaves)
    try:
        study = optuna.create_study(sampler=PriorSampler(distributions, default_point(space, config), trials=64,
                                                         startup_trials=4, seed=0))
        seconds = []
        for _ in range(told + asked):
            started = time.perf_counter()
            trial = study.ask()
            space(trial)
            seconds.append(time.perf_counter() - started)
            # a deterministic objective of the point: any will do, the forest's cost is the figure
            study.tell(trial, sum(hash(str(v)) % 97 for v in trial.params.values()) / 97)
    finally:
        forests.RandomForest.__init__ = PLATFORM_INIT
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
        before = seconds_per_point(args.space, args.told, args.asked, SMAC_DEFAULT_LEAVES)
        after = seconds_per_point(args.space, args.told, args.asked, None)
        print(f"hdr_patch `{args.space}`, s per point after {args.told} trials (mean of {args.asked}), repeat "
              f"{repeat}: SMAC's max_leaf_nodes 2**20 {before:.2f}, the sweep's None {after:.2f}: "
              f"{before / after:.2f}x", flush=True)


if __name__ == "__main__":
    main()
