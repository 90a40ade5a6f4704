"""What ties an Optuna trial of a sweep back to its Tune trial, as user attributes that
optuna-dashboard shows: the Tune trial id, whether it is the documented default, how it ended and
its best checkpoint. The searcher (ray_jobs/search/health_aware_search.py) sets them while the Optuna
trial is still running: a finished one takes no more."""

from __future__ import annotations


from ray.tune import Callback

from losstune.ray_jobs.core.storage import uri_of
from losstune.trainables.checkpoint_score import CHECKPOINT_SCORE, best_scored

TUNE_TRIAL_ID = "tune_trial_id"
DOCUMENTED_DEFAULT = "documented_default"
ENDED = "ended"  # completed / stopped by the scheduler at an epoch / stopped unhealthy / errored
BEST_CHECKPOINT = "best_checkpoint"


_RUNNING: dict[str, "BestCheckpoints"] = {}  # by sweep name, the callback of the Tune run in this process


class BestCheckpoints(Callback):
    """Each trial's best-scored checkpoint so far (the one Ray keeps as best), by the sweep's
    objective mode: a worker group's Train checkpoint arrives in a result's `checkpoint_path`
    (Ray's TuneReportCallback), a trial process's Tune checkpoint through `on_checkpoint`, after
    its result. Tune runs both before it tells the searcher that the trial ended.

    The searcher finds it by the sweep's name (`best_checkpoint`): a resumed sweep's searcher and
    callbacks are unpickled apart, and a reference between them would point to a copy."""

    def __init__(self, sweep: str, mode: str, store: str = ""):
        self.sweep, self.mode, self.store = sweep, mode, store  # store: Ray's paths there read as its URIs
        self.offered: dict[str, list[tuple[float, str]]] = {}  # by trial: (score, checkpoint) as reported

    def setup(self, **info):
        _RUNNING[self.sweep] = self

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("checkpoint_path"):
            self._offer(trial.trial_id, result.get(CHECKPOINT_SCORE), result["checkpoint_path"])

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self._offer(trial.trial_id, (trial.last_result or {}).get(CHECKPOINT_SCORE), checkpoint.path)

    def _offer(self, trial_id: str, score, path: str) -> None:
        self.offered.setdefault(trial_id, []).append((score, uri_of(path, self.store)))

    def best(self, trial_id: str) -> str:
        """The one Ray keeps as best (best_scored), "" where no epoch validated its own weights."""
        return best_scored(self.offered.get(trial_id, []), self.mode) or ""


def best_checkpoint(sweep: str, trial_id: str) -> str:
    """The trial's best checkpoint so far, "" where it has none (or no callback runs)."""
    running = _RUNNING.get(sweep)
    return running.best(trial_id) if running else ""


def ended(result: dict | None, error: bool, full_length: int | None) -> str:
    """How a trial ended, in words."""
    result = result or {}
    if error:
        return "errored"
    if result.get("stop_reason"):
        return f"stopped unhealthy at epoch {result.get('epoch')}: {result['stop_reason']}"
    if full_length and result.get("epoch", full_length) < full_length:
        return f"stopped by the scheduler at epoch {result.get('epoch')} of {full_length}"
    return "completed"
