"""What Ray stored of each trial's run, read whatever Tune recorded: its kept checkpoints and the
history the loop saves in every checkpoint, which holds the epochs Tune loses when it restarts a
trial whose driver died. A trial that trained in its own process reported its checkpoints to Tune
(in the trial's folder, `tune_run`); one that trained in a worker group, to Ray Train (in
<experiment>/trainer_runs/<run>, with Train's snapshot of those it keeps, `stored_run`). Both are
read as (the run's folder, a snapshot in Train's shape)."""

from __future__ import annotations


import pandas as pd

from losstune.ray_jobs.core.storage import exists, join, read_json, uri_of
from losstune.trainables.engine.checkpoints import STATE_FILE
from losstune.trainables.checkpoint_score import CHECKPOINT_SCORE, best_scored

RUNS_FOLDER = "trainer_runs"  # <experiment>/trainer_runs/<run>: each trial's TorchTrainer run(s)
TRAIN_SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's record of a run's kept checkpoints


def stored_run(experiment: str, run: str) -> tuple[str, dict]:
    """The folder of a trial's Train run (named by the trial, or, for a PBT trial that continued
    another's checkpoint, trainables.engine.driver.run_name) and Train's snapshot of its kept checkpoints
    ({} where it has none)."""
    folder = join(experiment, RUNS_FOLDER, run)
    snapshot = join(folder, TRAIN_SNAPSHOT)
    if not experiment:
        return folder, {}
    try:
        return folder, read_json(snapshot) if exists(snapshot) else {}
    except (OSError, ValueError):  # a snapshot cut short: Tune's record stands
        return folder, {}


def tune_run(result, experiment: str) -> tuple[str, dict] | None:
    """The folder of a trial's Tune checkpoints and those Tune keeps (a tune.Result's latest and
    best_checkpoints), as Train's snapshot would list them; None where it reported none to Tune
    (it trained in a worker group: `stored_run`)."""
    if result.checkpoint is None:
        return None
    folder, latest = result.checkpoint.path.rstrip("/").rsplit("/", 1)
    kept = [{"checkpoint_dir_name": checkpoint.path.rstrip("/").rsplit("/", 1)[1], "metrics": metrics}
            for checkpoint, metrics in result.best_checkpoints or []]
    return uri_of(folder, experiment), {"latest_checkpoint_result": {"checkpoint_dir_name": latest},
                                        "checkpoint_results": kept}


def stored_history(folder: str, snapshot: dict) -> pd.DataFrame:
    """Every epoch's metrics up to the run's latest checkpoint, as the loop saved them in it."""
    latest = (snapshot.get("latest_checkpoint_result") or {}).get("checkpoint_dir_name")
    uri = join(folder, latest, STATE_FILE)
    try:
        return pd.DataFrame(read_json(uri).get("history", [])) if latest and exists(uri) else pd.DataFrame()
    except (OSError, ValueError):
        return pd.DataFrame()


def kept_best_checkpoint(folder: str, snapshot: dict, mode: str) -> str:
    """The best-scored checkpoint of those Ray keeps for the run (its snapshot), or ""."""
    kept = snapshot.get("checkpoint_results", [])
    best = best_scored((((r.get("metrics") or {}).get(CHECKPOINT_SCORE), r) for r in kept), mode)
    return join(folder, best["checkpoint_dir_name"]) if best else ""


def complete_history(history: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """Tune's history of a trial with the epochs only the run's checkpoint still has (Tune loses
    a trial's earlier reports when it restarts the trial after its driver died), one row per
    epoch: the last report of an epoch that was run twice (before and after a restart) is the one
    the final weights continue from. A PBT trial's epochs before it continued a donor's
    checkpoint were trained by a run the donor's epochs replaced: the checkpoint's record (its
    `run` per epoch) wins there. `training_iteration` is the epoch throughout: Tune counts a
    restarted trial's reports from 1 again, and the checkpoint's epochs have none."""
    if "epoch" not in history:
        return with_epoch_index(stored)
    if len(stored) and "epoch" in stored:
        if "run" in stored and "run" in history:
            trained_by = dict(zip(stored["epoch"], stored["run"]))
            history = history[[trained_by.get(e, run) == run for e, run in zip(history["epoch"], history["run"])]]
        history = pd.concat([stored[~stored["epoch"].isin(history["epoch"])], history], ignore_index=True)
    history = history.drop_duplicates("epoch", keep="last").sort_values("epoch", kind="stable").reset_index(drop=True)
    return with_epoch_index(history)


def with_epoch_index(history: pd.DataFrame) -> pd.DataFrame:
    """One report per epoch: Tune's iteration is the epoch (after a restart its own count renumbers)."""
    return history.assign(training_iteration=history["epoch"]) if "epoch" in history else history
