"""The trial schedulers a sweep offers (--scheduler), each Ray Tune's own, each keeping the
documented default running to the end: every sweep must answer "did we beat the documented
setting?", and a default stopped at an early rung, or replaced by a copy of another trial, could
not answer it.

asha: AsyncHyperBandScheduler. hyperband: HyperBandScheduler (synchronous brackets; a trial waits,
paused, for its bracket at each rung). pbt / pb2: PopulationBasedTraining / PB2 over a space of
ray.tune distributions: a trial behind the others continues from a better trial's Train
checkpoint with mutated settings (trainables/continued.py applies them mid-run).
"""

from __future__ import annotations

import logging
import math
import random

import numpy as np
from ray.tune.schedulers import AsyncHyperBandScheduler, HyperBandScheduler, PopulationBasedTraining, TrialScheduler
from ray.tune.schedulers.hyperband import _Bracket
from ray.tune.schedulers.pb2 import PB2
from ray.tune.search.sample import Categorical, Domain, Integer

from losstune.ray_jobs.plan import POPULATION_SCHEDULERS, SweepPlan
from losstune.trainables.config import flatten, unflatten

logger = logging.getLogger(__name__)

REDUCTION_FACTOR = 3


def make_scheduler(plan: SweepPlan, space=None):
    """The plan's scheduler, or None; `space` (the sweep's dict of ray.tune distributions) for
    pbt / pb2, which mutate it."""
    grace = plan.grace_epochs or max(1, plan.epochs // 4)
    if plan.scheduler == "asha":
        return DefaultKeepingASHA(plan.default_point, time_attr="training_iteration", max_t=plan.epochs,
                                  grace_period=grace, reduction_factor=REDUCTION_FACTOR)
    if plan.scheduler == "hyperband":
        return DefaultKeepingHyperBand(plan.default_point, time_attr="epoch", max_t=plan.epochs,
                                       reduction_factor=REDUCTION_FACTOR)
    population = dict(time_attr="epoch", perturbation_interval=grace, quantile_fraction=0.25, log_config=False,
                      synch=plan.population_sync)
    if plan.scheduler in POPULATION_SCHEDULERS:
        seed_population_draws(plan.seed)
    if plan.scheduler == "pbt":
        return DefaultKeepingPBT(plan.default_point, plan.storage, plan.epochs, hyperparam_mutations=mutations(space),
                                 custom_explore_fn=within(space), **population)
    if plan.scheduler == "pb2":
        return DefaultKeepingPB2(plan.default_point, plan.storage, plan.epochs, hyperparam_bounds=bounds(space),
                                 **population)
    return None


def seed_population_draws(seed: int) -> None:
    """Tune's PBT picks donors and perturbations with Python's global `random`, PB2 and a resampled
    distribution with NumPy's: seeded with the sweep's --seed, a rerun draws the same ones where its
    results arrive in the same order (they arrive as trials finish epochs, so only then)."""
    random.seed(seed)
    np.random.seed(seed)


def is_default(trial, default_point: dict) -> bool:
    return flatten(trial.config) == default_point


class DefaultKeepingASHA(AsyncHyperBandScheduler):
    """ASHA that never stops the documented-default trial (an ASHA stop of the default at an early
    rung would compare the best trial's last epoch with the default's second one), and that
    forgets a trial its family's health check stopped, or that failed.

    Why forget: such a trial is no valid sample of the objective (the Optuna searcher is told it is
    infeasible), yet Tune's rungs keep its early values, and other trials are cut against them. On
    latent_conditioner `weights` the trials that later stop for loss imbalance are the fastest
    early (0.31-0.33 at epoch 2 against the healthy 0.41-0.42): kept in the rung, they cut every
    healthy trial but the default at epoch 2 and then stopped themselves at epoch 3."""

    def __init__(self, default_point: dict, **kwargs):
        super().__init__(**kwargs)
        self._default_point = default_point

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get("stop_reason"):
            self._forget(trial)
            return TrialScheduler.CONTINUE  # it ends by itself
        decision = super().on_trial_result(tune_controller, trial, result)
        return TrialScheduler.CONTINUE if is_default(trial, self._default_point) else decision

    def on_trial_complete(self, tune_controller, trial, result: dict):
        if result and result.get("stop_reason"):
            self._forget(trial)
            self._trial_info.pop(trial.trial_id, None)
            return
        super().on_trial_complete(tune_controller, trial, result)

    def on_trial_error(self, tune_controller, trial):
        self._forget(trial)
        self._trial_info.pop(trial.trial_id, None)

    def _forget(self, trial) -> None:
        """Takes the trial's values out of its bracket's rungs."""
        bracket = self._trial_info.get(trial.trial_id)
        for _, recorded in bracket._rungs if bracket else ():
            recorded.pop(trial.trial_id, None)


class FillOnceBracket(_Bracket):
    """A HyperBand bracket that is full once it has taken its n trials, finished or not.

    Tune's bracket counts only its live trials, so a trial that ends frees a place and the next
    new trial joins the same bracket: with trials created as slots free up (2 slots, 32 trials),
    every trial joined the first bracket, the one that stops nothing."""

    def filled(self) -> bool:
        return len(self._all_trials) >= self._n


class DefaultKeepingHyperBand(HyperBandScheduler):
    """HyperBand (synchronous successive halving in brackets of several aggressiveness) with the
    documented default outside every bracket: it runs to the end, first, and is never paused."""

    def __init__(self, default_point: dict, **kwargs):
        super().__init__(**kwargs)
        self._default_point = default_point
        self._default_trial = None

    def _create_bracket(self, s):
        bracket = super()._create_bracket(s)
        bracket.__class__ = FillOnceBracket  # same state, the count that fills it changed
        return bracket

    def on_trial_add(self, tune_controller, trial):
        if self._default_trial is None and is_default(trial, self._default_point):
            self._default_trial = trial
            return
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if trial is self._default_trial:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if trial is not self._default_trial:
            super().on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        if trial is not self._default_trial:
            super().on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial) -> None:
        if trial is not self._default_trial:
            super().on_trial_error(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller):
        if self._default_trial is not None and self._default_trial.status == "PENDING":
            return self._default_trial
        return super().choose_trial_to_run(tune_controller)


class ExploitsTrainCheckpoints:
    """What PBT and PB2 need to exploit a trial that runs a TorchTrainer.

    Tune's PBT exploits a donor's Tune checkpoint; a Train V2 trial reports none (TuneReportCallback
    passes Tune the path of Train's checkpoint among the metrics, as `checkpoint_path`). Here the
    donor's checkpoint is that Train checkpoint, of the epoch of its perturbation (the sweep
    checkpoints every perturbation interval); the recipient's driver starts a new Train run from it
    (trainables.driver.run_name). The documented default is never exploited: it stays the baseline.
    """

    def __init__(self, default_point: dict, storage: str, epochs: int, **kwargs):
        super().__init__(**kwargs)
        self._default_point = default_point
        self._storage = storage
        self._epochs = epochs
        self._default_trial = None

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        # a trial at its last epoch has ended: continuing a donor there would only copy its end
        if result.get(self._time_attr, 0) >= self._epochs:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_add(self, tune_controller, trial):
        super().on_trial_add(tune_controller, trial)
        if self._default_trial is None and is_default(trial, self._default_point):
            self._default_trial = trial

    def _quantiles(self):
        """Tune's (lower, upper) quantiles, the default left out of the lower one: else, in a small
        population where the default is the worst, its place would be the only one and no trial
        would ever be exploited."""
        lower, upper = super()._quantiles()
        if self._default_trial not in lower:
            return lower, upper
        behind = [trial for trial in sorted(self._scored(), key=lambda t: self._trial_state[t].last_score)
                  if trial is not self._default_trial and trial not in upper]
        return behind[:len(lower)], upper

    def _scored(self) -> list:
        """The trials PBT ranks: live, with a finite score at their last perturbation."""
        return [trial for trial, state in self._trial_state.items() if not trial.is_finished()
                and state.last_score is not None and math.isfinite(state.last_score)]

    def _checkpoint_or_exploit(self, trial, tune_controller, upper_quantile, lower_quantile):
        state = self._trial_state[trial]
        path = (state.last_result or {}).get("checkpoint_path")
        # Tune keeps a checkpoint only of a trial that is in the upper quantile at its own
        # perturbation, to save the cost of saving; Train has saved it already, and a trial that
        # reported first (before anyone could rank it) may be the best one later
        state.last_checkpoint = self.train_checkpoint(path) if path else None
        if trial not in lower_quantile or trial is self._default_trial:
            return
        donor = random.choice(upper_quantile)
        if self._trial_state[donor].last_checkpoint is None:
            logger.info("pbt: %s has no checkpoint at its last perturbation; %s not exploited", donor, trial)
            return
        self._exploit(tune_controller, trial, donor)

    def train_checkpoint(self, path: str):
        import ray.train

        from losstune.ray_jobs.storage import filesystem

        return ray.train.Checkpoint(path, filesystem=filesystem(self._storage)[0])


class DefaultKeepingPBT(ExploitsTrainCheckpoints, PopulationBasedTraining):
    """Tune's PBT: explore multiplies a number by 0.8 or 1.2 (or resamples it, p 0.25) and moves a
    choice to a neighbour, kept inside the space's bounds."""


class DefaultKeepingPB2(ExploitsTrainCheckpoints, PB2):
    """Tune's PB2: explore picks the continuous settings by a GP bandit over the population's
    recent improvements; a choice keeps the value the trial started with."""


def mutations(space: dict) -> dict:
    """PBT's hyperparam_mutations: the space's distributions, a choice as its list of values."""
    return {key: mutations(value) if isinstance(value, dict) else
            list(value.categories) if isinstance(value, Categorical) else value
            for key, value in space.items() if isinstance(value, (dict, Domain))}


def bounds(space: dict) -> dict:
    """PB2's hyperparam_bounds: [low, high] of each numeric distribution (choices are left out)."""
    return unflatten({key: list(limits(domain)) for key, domain in numeric(space).items()})


def within(space: dict):
    """PBT's custom_explore_fn: a perturbed number clipped to its distribution's bounds (x1.2 of a
    warmup fraction at its upper bound would leave the space the sweep was asked to search)."""
    ranges = {key: limits(domain) for key, domain in numeric(space).items()}

    def clip(config: dict) -> dict:
        flat = flatten(config)
        for key, (low, high) in ranges.items():
            flat[key] = type(flat[key])(min(max(flat[key], low), high))
        return unflatten(flat)

    return clip


def numeric(space: dict) -> dict:
    """{flat name: distribution} of the space's numbers."""
    return {key: value for key, value in flatten(space).items()
            if isinstance(value, Domain) and not isinstance(value, Categorical)}


def limits(domain) -> tuple:
    """(lowest, highest) value of a numeric distribution; tune.randint's upper bound is exclusive."""
    return domain.lower, domain.upper - 1 if isinstance(domain, Integer) else domain.upper
