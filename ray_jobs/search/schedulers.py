"""The trial schedulers a sweep offers (--scheduler), each Ray Tune's own, each keeping the
documented default running to the end: every sweep must answer "did we beat the documented
setting?", and a default stopped at an early rung, or replaced by a copy of another trial, could
not answer it.

asha: AsyncHyperBandScheduler. hyperband: HyperBandScheduler (synchronous brackets; a trial waits,
paused, for its bracket at each rung). pbt / pb2: PopulationBasedTraining / PB2 over a space of
ray.tune distributions: a trial behind the others continues from a better trial's Train
checkpoint with mutated settings (ray_jobs/search/population.py; trainables/engine/continued.py applies them
mid-run).
"""

from __future__ import annotations

import random

import numpy as np
from ray.tune.schedulers import AsyncHyperBandScheduler, HyperBandScheduler, TrialScheduler
from ray.tune.schedulers.hyperband import _Bracket

from losstune.ray_jobs.core.plan import POPULATION_SCHEDULERS, SweepPlan
from losstune.ray_jobs.search.population import DefaultKeepingPB2, DefaultKeepingPBT, bounds, is_default, mutations, within

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
        train_checkpoints = not plan.resources.in_trial_process  # what a donor's checkpoint is
    if plan.scheduler == "pbt":
        return DefaultKeepingPBT(plan.default_point, plan.storage, plan.epochs, train_checkpoints, hyperparam_mutations=mutations(space),
                                 custom_explore_fn=within(space), **population)
    if plan.scheduler == "pb2":
        return DefaultKeepingPB2(plan.default_point, plan.storage, plan.epochs, train_checkpoints, hyperparam_bounds=bounds(space),
                                 **population)
    return None


def seed_population_draws(seed: int) -> None:
    """Tune's PBT picks donors and perturbations with Python's global `random`, PB2 and a resampled
    distribution with NumPy's: seeded with the sweep's --seed, a rerun draws the same ones where its
    results arrive in the same order (they arrive as trials finish epochs, so only then)."""
    random.seed(seed)
    np.random.seed(seed)


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
