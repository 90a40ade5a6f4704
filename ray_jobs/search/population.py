"""PBT and PB2 for the platform's trials: what their exploit takes from a donor (its latest Tune
checkpoint, or its Train checkpoint where it trains in a worker group), the documented default kept
out of it, and the mutations kept inside the space."""

from __future__ import annotations

import logging
import math
import random

from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler
from ray.tune.schedulers.pbt import _FutureTrainingResult
from ray.tune.schedulers.pb2 import PB2
from ray.tune.search.sample import Categorical, Domain, Integer

from losstune.trainables.config import flatten, unflatten
from losstune.ray_jobs.core.storage import filesystem
import ray.train

logger = logging.getLogger(__name__)


def is_default(trial, default_point: dict) -> bool:
    return flatten(trial.config) == default_point


class ExploitsTrainCheckpoints:
    """What PBT and PB2 need to exploit the platform's trials.

    Tune's PBT exploits a donor's Tune checkpoint. A trial that trains in its own process reports
    one every epoch (trainables/engine/tune_session.py); one that trains in a Train V2 worker group reports
    none (TuneReportCallback passes Tune the path of Train's checkpoint among the metrics, as
    `checkpoint_path`): there the donor's checkpoint is that Train checkpoint, and the recipient's
    driver starts a new Train run from it (trainables.engine.driver.run_name). Either is of the epoch of
    the donor's perturbation (the sweep checkpoints every perturbation interval). The documented
    default is never exploited: it stays the baseline.
    """

    def __init__(self, default_point: dict, storage: str, epochs: int, train_checkpoints: bool = True, **kwargs):
        super().__init__(**kwargs)
        self._train_checkpoints = train_checkpoints  # the trials train in worker groups
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
        # Tune keeps a checkpoint only of a trial that is in the upper quantile at its own
        # perturbation, to save the cost of saving; every trial here has saved it already (a
        # function trainable's save returns its last reported checkpoint), and a trial that
        # reported first (before anyone could rank it) may be the best one later
        state.last_checkpoint = self.last_checkpoint(trial, tune_controller, state.last_result or {})
        if trial not in lower_quantile or trial is self._default_trial:
            return
        donor = random.choice(upper_quantile)
        donor_state = self._trial_state[donor]
        if isinstance(donor_state.last_checkpoint, _FutureTrainingResult):
            saved = donor_state.last_checkpoint.resolve()  # as Tune's own _checkpoint_or_exploit does
            donor_state.last_checkpoint = saved.checkpoint if saved else None
            donor_state.last_result = saved.metrics if saved else donor_state.last_result
        if donor_state.last_checkpoint is None:
            logger.info("pbt: %s has no checkpoint at its last perturbation; %s not exploited", donor, trial)
            return
        self._exploit(tune_controller, trial, donor)

    def last_checkpoint(self, trial, tune_controller, result: dict):
        """The trial's checkpoint of this perturbation: its Train checkpoint where it trains in a worker
        group (None if that epoch saved none), else its last reported Tune checkpoint (saved now,
        or, paused, the one it holds)."""
        if self._train_checkpoints:
            return self.train_checkpoint(result["checkpoint_path"]) if result.get("checkpoint_path") else None
        if trial.status == Trial.PAUSED:
            return trial.checkpoint
        return tune_controller._schedule_trial_save(trial, result=result)

    def train_checkpoint(self, path: str):
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
