"""TPE with branch-fair start-up (the default of --search optuna and optuna-grouped; --startup
random: Optuna's own). On a space that branches, TPE's random start-up trials choose each branch by
a coin, and TPE then settles on the branch of its first good trials: on hdr_patch `all` it drew
cap mode A in a median 86-92% of its trials (benchmarks/history.md). Here, while TPE is still
sampling at random, every choice (a branch's switch, or any categorical parameter) takes the value
that the study's trials so far, running ones included, took least often, ties broken at random, so
each branch gets its share of the start-up; numbers stay random. Past the start-up TPE models the
results as Optuna's does."""

from __future__ import annotations

from collections import Counter

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState


class BranchFairTPESampler(optuna.samplers.TPESampler):
    def __init__(self, *, n_startup_trials: int, seed: int | None = None, **tpe):
        super().__init__(n_startup_trials=n_startup_trials, seed=seed, **tpe)
        self.startup = n_startup_trials
        self.fair_rng = np.random.RandomState(seed)

    def sample_independent(self, study, trial, param_name, param_distribution):
        if isinstance(param_distribution, CategoricalDistribution) and self.starting(study):
            return least_taken(study, trial, param_name, param_distribution.choices, self.fair_rng)
        return super().sample_independent(study, trial, param_name, param_distribution)

    def starting(self, study) -> bool:
        """Whether TPE still samples at random: as Optuna's TPE decides, on finished trials."""
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))) < self.startup


def least_taken(study, trial, name: str, choices, rng):
    """The choice the study's other trials that have `name` took least often (ties: at random)."""
    taken = Counter(choices.index(t.params[name]) for t in study.get_trials(deepcopy=False)
                    if t.number != trial.number and name in t.params and t.params[name] in choices)
    fewest = min(taken.get(k, 0) for k in range(len(choices)))
    return choices[rng.choice([k for k in range(len(choices)) if taken.get(k, 0) == fewest])]
