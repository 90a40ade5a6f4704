"""The sweep's searcher: Ray's OptunaSearch told each trial's health, so that Optuna never learns
from a diverged trial as if it had finished, and never trains a config twice in a row."""

from __future__ import annotations

import logging
import warnings

import optuna
from ray.tune.search.optuna import OptunaSearch

from losstune.ray_jobs.results.study import HEALTH_CONSTRAINT, REPEAT_OF, WARM_START, name_metrics
from losstune.ray_jobs.results.trial_links import (BEST_CHECKPOINT, DOCUMENTED_DEFAULT, ENDED, TUNE_TRIAL_ID,
                                           best_checkpoint, ended)
from losstune.ray_jobs.search.prior_points import add_prior_trials
from losstune.search_spaces import space_distributions

logger = logging.getLogger(__name__)

REDRAWS = 32  # draws in a row that may repeat trained configs before one is trained again


class HealthAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna FAIL for a trial that errored, PRUNED and infeasible for one
    its family's health check stopped, and PRUNED for one a scheduler stopped before
    `full_length` epochs.

    Ray's OptunaSearch records a trial that errored after reporting as COMPLETE with its last
    value, so a diverged trial could become the study's best. It also records an ASHA-stopped
    trial as COMPLETE with its value at the epoch it was stopped, which TPE then ranks against
    full-length trials as if it were final. Pruned, Optuna keeps its reported epochs
    (intermediate values) and TPE ranks it behind the trials that ran to the end. (Multi-objective
    studies take no intermediate values; there the stopped trial stays COMPLETE.)

    A trial that ended with a `stop_reason` (non-finite loss, one loss term taking over, ...) is
    no valid sample of the objective, but it is a finding about its settings: the seeds' failure
    modes belong to regions of the space. Told FAIL, TPE ignored it. On latent_conditioner
    `weights`, where 28-36 of a TPE sweep's 36-47 trials stopped unhealthy, its 4 start-up trials
    (it counts COMPLETE and PRUNED ones) took until trial 11-21, and then it modelled the few
    healthy trials while the unhealthy region stayed invisible. So such a trial is PRUNED with the
    constraint `healthy` violated: TPE ranks an infeasible trial behind every feasible one, and
    no study gives it as a best (GP models COMPLETE trials only, so it ignores the trial as it
    did a FAIL one). CMA-ES knows no constraints and would rank it by its last value (unhealthy
    trials are often the fastest early), so under CMA-ES it stays FAIL. Its `stop_reason` is a
    user attribute of the Optuna trial.

    A draw that repeats a config this sweep has trained (to the end, or until its health check
    stopped it) is told that trial's result and not trained again: every trial trains at the
    sweep's seed, so it would only repeat the result. TPE keeps drawing a branch of choices alone
    (hdr_patch's Mode A without a clamp): 15 of one TPE sweep's 49 trials trained the same config.
    """

    def __init__(self, *args, full_length: int | None = None, priors: list = (), prior_space=None,
                 default_point: dict | None = None, **kwargs):
        self.full_length = full_length
        self.priors, self.prior_space = list(priors), prior_space  # before Ray's __init__ sets the study up
        self.default_point = default_point
        self._last_step: dict[str, int] = {}  # the epoch of each trial's last intermediate value
        super().__init__(*args, **kwargs)

    def _setup_study(self, mode):
        """Ray's study, with the objectives' names (Optuna's plots and optuna-dashboard read them)
        and, on a fresh study, the warm start's prior trials."""
        super()._setup_study(mode)
        study = self._ot_study
        if study.metric_names is None:
            name_metrics(study, self._metric if isinstance(self._metric, list) else [self._metric])
        if self.priors and not study.user_attrs.get("warm_start_trials"):
            add_prior_trials(study, self.priors, space_distributions(self.prior_space)[0])
            study.set_user_attr("warm_start_trials", len(self.priors))

    def suggest(self, trial_id: str):
        """Ray's suggestion; a repeat of a trained config is told that config's result and drawn
        again (REDRAWS times, then trained all the same: the sampler has nothing new to offer)."""
        for _ in range(REDRAWS):
            config = self._drawn(trial_id)
            earlier = self._trained_alike(self._ot_trials[trial_id])
            if earlier is None:
                self._link(trial_id)
                return config
            self._tell_as_before(self._ot_trials.pop(trial_id), earlier)
        logger.warning("%s: %d draws in a row repeated trained configs; training the next one again",
                       trial_id, REDRAWS)
        config = self._drawn(trial_id)
        self._link(trial_id)
        return config

    def _drawn(self, trial_id: str):
        # Tune warns where a define-by-run space takes over a second: a model-based sampler's own time
        # (--search prior's SMAC takes seconds a point), not training in the driver as it fears
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Define-by-run function passed in the `space` argument took")
            return super().suggest(trial_id)

    def _link(self, trial_id: str) -> None:
        """The Tune trial an Optuna trial is, and whether it is the documented default: the first
        enqueued trial (Optuna's mark) with the default's values."""
        trial = self._ot_trials.get(trial_id)
        if trial is None:
            return  # Ray's searcher had nothing to suggest
        trial.set_user_attr(TUNE_TRIAL_ID, trial_id)
        trials = self._ot_study.get_trials(deepcopy=False)
        enqueued = "fixed_params" in trials[trial.number].system_attrs
        first = not any(t.user_attrs.get(DOCUMENTED_DEFAULT) for t in trials[:trial.number])  # an --enqueue may repeat it
        trial.set_user_attr(DOCUMENTED_DEFAULT, bool(enqueued and first and trial.params == self.default_point))

    def _trained_alike(self, trial):
        """The trial of this sweep that trained the same config with a result it would repeat:
        COMPLETE, or stopped by its health check. None for the default or an --enqueue point (they
        run as asked), and for a config only a scheduler stopped (that depends on the others)."""
        trials = self._ot_study.get_trials(deepcopy=False)
        if "fixed_params" in trials[trial.number].system_attrs:
            return None  # Optuna's mark of an enqueued trial
        for done in trials:
            known = done.state == optuna.trial.TrialState.COMPLETE or (
                done.state.is_finished() and "stop_reason" in done.user_attrs)
            if known and done.params == trial.params and not done.user_attrs.get(WARM_START):
                return done
        return None

    def _tell_as_before(self, trial, earlier) -> None:
        trial.set_user_attr(REPEAT_OF, earlier.number)
        if earlier.state == optuna.trial.TrialState.COMPLETE:
            self._ot_study.tell(trial, earlier.values)
            return
        trial.set_user_attr("stop_reason", earlier.user_attrs["stop_reason"])
        for key, value in earlier.constraints.items():
            trial.set_constraint(key, value)
        for step, value in earlier.intermediate_values.items():  # its epochs, as a pruned trial keeps them
            trial.report(value, step)
        self._ot_study.tell(trial, state=earlier.state)

    def on_trial_result(self, trial_id: str, result: dict):
        self._note_if_told(trial_id)
        super().on_trial_result(trial_id, result)
        self._last_step[trial_id] = result.get("training_iteration")

    def _note_if_told(self, trial_id: str) -> None:
        """A sweep driver killed after Optuna was told a trial's end but before Tune saved that
        trial runs it again on --resume (its run only reports its end once more). Ray's check for
        an ended trial reads the searcher's state, saved before the end; reporting to a finished
        Optuna trial raises and ends the sweep. The study is the record: it has the answer."""
        trial = self._ot_trials.get(trial_id)
        if trial is None or trial_id in self._completed_trials:
            return
        if self._ot_study.get_trials(deepcopy=False)[trial.number].state.is_finished():
            self._completed_trials.add(trial_id)  # Ray then ignores its results and its end

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        self._note_if_told(trial_id)
        result = result or {}
        if error:
            if trial_id in self._ot_trials and trial_id not in self._completed_trials:
                self._ot_trials[trial_id].set_user_attr(ENDED, ended(None, True, self.full_length))
            return super().on_trial_complete(trial_id, result=None, error=True)
        # (a trial Optuna was told of already takes no attributes: Ray's own check below skips it)
        if trial_id not in self._completed_trials:
            self._record_end(trial_id, result)
        if result.get("stop_reason") and trial_id not in self._completed_trials:
            return self._tell_unhealthy(trial_id, result["stop_reason"])
        stopped_early = self.full_length and result.get("epoch", self.full_length) < self.full_length
        if stopped_early and not isinstance(self.metric, list):
            return super().on_trial_complete(trial_id, result=None, error=False)  # Ray: PRUNED
        return super().on_trial_complete(trial_id, result=result or None, error=error)

    def _record_end(self, trial_id: str, result: dict) -> None:
        """How the trial ended and its best checkpoint, and its last epoch as an intermediate value:
        Tune gives a trial's last result (the one a scheduler stopped it at, too) to
        on_trial_complete only, so Ray's searcher reported every epoch but that one."""
        trial = self._ot_trials.get(trial_id)
        if trial is None:
            return  # never suggested (Tune removed it before it started)
        trial.set_user_attr(ENDED, ended(result, False, self.full_length))
        if path := best_checkpoint(self._study_name, trial_id):
            trial.set_user_attr(BEST_CHECKPOINT, path)
        step = result.get("training_iteration")
        single = not isinstance(self.metric, list)  # Optuna keeps no intermediate values of several
        if single and step is not None and step != self._last_step.get(trial_id) and result.get(self.metric) is not None:
            trial.report(result[self.metric], step)

    def _tell_unhealthy(self, trial_id: str, stop_reason: str) -> None:
        trial = self._ot_trials[trial_id]
        trial.set_user_attr("stop_reason", stop_reason)
        if isinstance(self._sampler, optuna.samplers.CmaEsSampler):
            return super().on_trial_complete(trial_id, result=None, error=True)  # Ray: FAIL
        trial.set_constraint(HEALTH_CONSTRAINT, 1.0)  # > 0: violated
        return super().on_trial_complete(trial_id, result=None, error=False)  # Ray: PRUNED
