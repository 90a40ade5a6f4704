"""A sweep's results as plain files beside Tune's experiment: trials.parquet (one row per trial),
history.parquet (one row per trial-epoch), best_config.json and PNG plots (the printed summary:
report.py).

Shared by ray_jobs/sweep.py (at the end of a sweep) and ray_jobs/analyze.py (any time, also while
a sweep runs). Paths are pyarrow filesystem URIs or local paths.
"""

from __future__ import annotations

import json
import math
import os
import re

import pandas as pd
import pyarrow.fs

from losstune.ray_jobs.core.plan import POPULATION_SCHEDULERS
from losstune.ray_jobs.results.plots import plots
from losstune.ray_jobs.core.storage import (SweepFolderError, exists, filesystem, join, read_bytes_of, read_json, read_parquet,
                                       write_bytes, write_parquet)
from losstune.ray_jobs.results.study_plots import study_files
from losstune.ray_jobs.results.stored_runs import complete_history, kept_best_checkpoint, stored_history, stored_run, tune_run
from losstune.ray_jobs.results.trial_stats import pareto_front, with_cost
from losstune.ray_jobs.results.ranking import best_config, ranked
from losstune.trainables.config import flatten
from losstune.trainables.checkpoint_score import CHECKPOINT_SCORE, best_scored
import pyarrow

META_FILE = "losstune_sweep.json"


META_NEEDS = ("family", "space", "objective", "default_point", "epochs", "trials", "base")


def read_meta(experiment: str) -> dict:
    """The sweep's saved definition (META_FILE), checked: a missing, corrupt or foreign file is a
    SweepFolderError naming it."""
    uri = join(experiment, META_FILE)
    try:
        if not exists(uri):
            raise SweepFolderError(f"{experiment}: not a losstune sweep (no {META_FILE})")
        meta = read_json(uri)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SweepFolderError(f"{uri}: corrupt ({type(err).__name__}: {err})") from None
    except OSError as err:  # an object store that does not answer, or refuses the credentials
        raise SweepFolderError(f"{experiment}: cannot be read ({(str(err).splitlines() or [type(err).__name__])[0]})"
                               ) from None
    missing = [key for key in META_NEEDS if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise SweepFolderError(f"{uri}: not a losstune sweep definition (missing {', '.join(missing)})")
    return meta


TRIALS_FILE = "trials.parquet"
TRIALS_NEED = ("trial_id", "status", "objective", "is_default")  # what confirm, the report and load_sweep read


def read_trials(experiment: str) -> pd.DataFrame:
    """The sweep's trials table, checked: one that cannot be read as Parquet (0 bytes, garbage) or
    lacks the columns every reader needs is a SweepFolderError naming it and how to rewrite it."""
    uri = join(experiment, TRIALS_FILE)
    try:
        trials = read_parquet(uri)
    except (pyarrow.ArrowException, OSError, ValueError) as err:
        why = (str(err).splitlines() or [type(err).__name__])[0]
        raise SweepFolderError(f"{uri}: not a trials table ({why}); losstune-analyze {experiment} rewrites it") from None
    missing = [column for column in TRIALS_NEED if column not in trials]
    if missing:
        raise SweepFolderError(f"{uri}: lacks the column(s) {', '.join(missing)}; losstune-analyze {experiment} "
                               "rewrites it")
    return trials


def check_tune_state(experiment: str) -> str:
    """The newest of Tune's experiment_state-*.json, which Tune reads (ExperimentAnalysis), checked
    to parse: Tune writes one once the sweep has started, before that there is nothing to read; a
    damaged one is a SweepFolderError naming it (Tune's traceback came after the files were read)."""
    fs, path = filesystem(experiment)
    names = [info.base_name for info in fs.get_file_info(pyarrow.fs.FileSelector(path))]
    states = sorted(name for name in names if name.startswith("experiment_state-") and name.endswith(".json"))
    if not states:
        raise SweepFolderError(f"{experiment}: no Tune experiment state yet (the sweep has not saved its first "
                               "snapshot); try again once its trials run")
    newest = join(experiment, states[-1])  # Tune's pick: the newest by its timestamped name
    try:
        json.loads(read_bytes_of(newest))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        earlier = "; move it aside to read the one before it" if len(states) > 1 else ""
        raise SweepFolderError(f"{newest}: Tune's experiment state is damaged ({type(err).__name__}: "
                               f"{(str(err).splitlines() or [''])[0]}){earlier}") from None
    return newest


def all_results(experiment: str, extensions: list[str]) -> list:
    """The Tune results of every run of a sweep: its own, then each extension's (--resume --trials)."""
    # here, not at the top: loads ray only where this runs
    from ray.tune import ExperimentAnalysis, ResultGrid

    runs = [experiment, *[join(experiment, name) for name in extensions if exists(join(experiment, name))]]
    # the state file itself: given a folder, Tune takes a name ending in ".json" for the file
    return [result for run in runs for result in ResultGrid(ExperimentAnalysis(check_tune_state(run)))]


def trial_status(metrics: dict, error, epochs: int) -> str:
    if error is not None:
        return "ERROR"
    if not metrics:
        return "PENDING"
    if metrics.get("stop_reason"):
        return "STOPPED"
    if metrics.get("epoch", 0) < epochs:
        return "EARLY_STOPPED"  # by the scheduler (ASHA), or still running
    return "COMPLETED"


def launch_index(trial_dir: str, trial_id: str) -> int:
    """Tune's launch order of a trial, from its folder's name (run_trial_<id>_<index>_...); -1 where
    absent. Read after the id: an id can be all digits."""
    index = re.search(rf"{trial_id}_(\d+)", os.path.basename(trial_dir))
    return int(index.group(1)) if index else -1


def tables(result_grid, meta: dict, experiment: str = ""):
    """(trials, history) DataFrames from a Tune ResultGrid and the sweep's metadata; with the
    sweep's folder (`experiment`), each trial's history and best checkpoint as Ray stored its run."""
    mode = meta["objective"]["mode"]
    rows, histories = [], []
    for result in result_grid:
        row, history = trial_row(result, meta, experiment)
        rows.append(row)
        if len(history):
            histories.append(history.assign(trial_id=row["trial_id"]))
    trials = pd.DataFrame(rows)
    if len(trials):
        trials = ranked(trials, mode)
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    if meta.get("objectives") and len(trials):
        trials["pareto"] = pareto_front(trials, meta["objectives"])
    if meta.get("resources") and len(trials):
        trials = with_cost(trials, meta["resources"])
    return trials, history


def trial_row(result, meta: dict, experiment: str) -> tuple[dict, pd.DataFrame]:
    """One trial's row of trials.parquet and its history, per epoch."""
    metric, mode = meta["objective"]["metric"], meta["objective"]["mode"]
    metrics = result.metrics or {}
    params = flatten(result.config or {})
    reported = result.metrics_dataframe if result.metrics_dataframe is not None else pd.DataFrame()
    trial_id = own_trial_id(metrics, reported, result.path)
    if metrics.get("trial_id", trial_id) != trial_id:
        # PBT gave the trial its donor's last result, and the trial failed before reporting its own
        metrics = reported.iloc[-1].to_dict()
    run = metrics.get("run") or trial_id  # the trial's Train run; a PBT trial's latest
    folder, snapshot = tune_run(result, experiment) or stored_run(experiment, run)
    history = complete_history(reported, stored_history(folder, snapshot))
    values = history[metric].dropna() if metric in history else pd.Series(dtype=float)
    row = {
        "trial_id": trial_id,
        "trial_index": launch_index(result.path, trial_id),
        "is_default": params == meta["default_point"],
        "is_enqueued": any(all(params.get(k) == v for k, v in point.items()) for point in meta.get("enqueued", [])),
        "status": trial_status(metrics, result.error, meta["epochs"]),
        "stop_reason": metrics.get("stop_reason") or ("error" if result.error is not None else ""),
        "epochs_done": int(metrics.get("epoch", 0)),
        "objective": metrics.get(metric, math.nan),
        "best_objective": (values.min() if mode == "min" else values.max()) if len(values) else math.nan,
        "wall_s": metrics.get("time_total_s", math.nan),
        "restarts": int(metrics.get("restarts", 0)),  # worker or node losses the trial resumed from
        "best_checkpoint": (kept_best_checkpoint(folder, snapshot, mode)
                            or best_checkpoint_path(history, mode)),
    }
    if meta.get("scheduler") in POPULATION_SCHEDULERS:
        row.update(lineage=lineage(history), lr_by_epoch=lr_by_epoch(history))
    # validation and health metrics
    row.update({f"final/{k}": v for k, v in metrics.items() if k.startswith(("val/", "health/"))})
    row.update({f"config/{k}": v for k, v in params.items()})
    row["error"] = error_summary(result.error) if result.error is not None else ""
    return row, history


def own_trial_id(metrics: dict, reported: pd.DataFrame, path: str) -> str:
    """The trial's id, as its own reports give it (a PBT trial's last result may be its donor's)."""
    if "trial_id" in reported and len(reported):
        return str(reported["trial_id"].iloc[-1])
    return metrics.get("trial_id") or os.path.basename(path).split("_")[-1]


def lineage(history: pd.DataFrame) -> str:
    """Which trial trained which epochs of the weights a PBT trial ended with, from its history's
    `run` column: "a_00003 e1-2 > a_00001 e3-6" (trial 00001 continued 00003's epoch 2)."""
    if "run" not in history or not len(history):
        return ""
    trained_by = [str(run).split("-from-")[0] for run in history["run"]]
    segments, first = [], 0
    for i in range(1, len(trained_by) + 1):
        if i == len(trained_by) or trained_by[i] != trained_by[first]:
            epochs = history["epoch"].iloc[[first, i - 1]].astype(int).tolist()
            segments.append(f"{trained_by[first]} e{epochs[0]}-{epochs[1]}")
            first = i
    return " > ".join(segments)


def lr_by_epoch(history: pd.DataFrame) -> str:
    """The learning rate each epoch ended at, as the trial actually followed it: "1e-03 9.8e-04 ..." """
    return " ".join(f"{lr:.2g}" for lr in history["lr"]) if "lr" in history else ""


def best_checkpoint_path(history: pd.DataFrame, mode: str) -> str:
    """Where a trial wrote its best-scored checkpoint, the one Ray Train keeps beside the latest
    (trainables.engine.driver.keep_checkpoints); "" where no epoch both checkpointed and validated."""
    if CHECKPOINT_SCORE not in history or "checkpoint_path" not in history:
        return ""  # a sweep from before checkpoints were scored
    checkpointed = history[history["checkpoint_path"].notna()]
    return best_scored(zip(checkpointed[CHECKPOINT_SCORE], checkpointed["checkpoint_path"]), mode) or ""


def write_all(experiment_uri: str, trials: pd.DataFrame, history: pd.DataFrame, meta: dict) -> dict:
    """Write the tables, best config, plots, the study's importance and Optuna's plots; returns
    {what: uri}."""
    written = {}
    for name, frame in (("trials", trials), ("history", history)):
        written[name] = join(experiment_uri, f"{name}.parquet")
        write_parquet(written[name], frame)
    config = best_config(trials, meta)
    if config is not None:
        written["best_config"] = join(experiment_uri, "best_config.json")
        write_bytes(written["best_config"], json.dumps(config, indent=2).encode())
    for name, png in plots(trials, history, meta).items():
        written[name] = join(experiment_uri, f"{name}.png")
        write_bytes(written[name], png)
    return written | study_files(experiment_uri, meta)


def error_summary(error) -> str:
    """The innermost `SomeError: message` line of a (chained, remote) error."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    raised = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", line)]
    return (raised or [line for line in lines if line] or [type(error).__name__])[-1]
