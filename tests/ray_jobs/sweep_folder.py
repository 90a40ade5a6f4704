"""A sweep folder written without Ray, as a sweep leaves it: its definition, an Optuna study journal
of hdr_patch's caps space (documented default first), the tables and figures of results.write_all,
and one confirmation. For the tests of what is read from a finished sweep."""

import json
import math

import optuna
import pandas as pd
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from losstune.ray_jobs.confirmation import runs as confirmation
from losstune.ray_jobs.results import tables as results
from losstune.ray_jobs.results import trial_stats
from losstune.ray_jobs.results.ranking import ranked
from losstune.ray_jobs.confirmation import verdicts
from losstune.ray_jobs.results.study import STUDY_FILE
from losstune.search_spaces import default_point
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family

METRIC = "val/log_l1"


def objective(params: dict) -> float:
    """Mode B is better the nearer its scale is to 0.5; Mode A's trials are all worse."""
    if params["caps/mode"] == "A":
        return 1.2 + 0.01 * params.get("model/scale_init", 0.0)
    return 0.9 + abs(math.log(params["caps/log_delta_scale"] / 0.5))


def write_sweep(folder, trials: int = 12) -> dict:
    """Write the sweep into `folder` (a pathlib.Path); returns its definition."""
    family = load_family("hdr_patch")
    space = family.spaces["caps"]
    default = default_point(space, make_config(family))
    meta = {"family": "hdr_patch", "space": "caps", "name": folder.name, "objective": {"metric": METRIC, "mode": "min"},
            "objectives": [], "default_point": default, "epochs": 3, "trials": trials, "base": {"train": {"seed": 0}},
            "seed": 0, "resources": {"workers": 1, "cpus_per_worker": 0.9, "gpus_per_worker": 0.0, "driver_cpus": 0.1},
            "provenance": {"python": "3.11", "packages": {"optuna": optuna.__version__}, "git": {},
                           "machine": {"cpus": 2, "gpus": []}, "data": "synthetic", "command": "losstune-sweep"}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / results.META_FILE).write_text(json.dumps(meta))
    study = optuna.create_study(study_name=folder.name, sampler=optuna.samplers.RandomSampler(seed=1),
                                storage=JournalStorage(JournalFileBackend(str(folder / STUDY_FILE))))
    study.set_metric_names([METRIC])
    study.enqueue_trial(default)
    study.optimize(lambda trial: (space(trial), objective(trial.params))[1], n_trials=trials)
    rows = [{"trial_id": f"t{t.number:02d}", "trial_index": t.number + 1, "is_default": t.params == default,
             "status": "COMPLETED", "stop_reason": "", "epochs_done": 3, "objective": t.value,
             "best_objective": t.value, "wall_s": 10.0, "restarts": 0,
             "best_checkpoint": f"{folder}/trainer_runs/t{t.number:02d}/checkpoint_000002", "error": "",
             f"final/{METRIC}": t.value, **{f"config/{k}": v for k, v in t.params.items()}} for t in study.trials]
    table = trial_stats.with_cost(ranked(pd.DataFrame(rows), "min"), meta["resources"])
    history = pd.DataFrame([{"trial_id": r["trial_id"], "epoch": e, METRIC: r["objective"] + 3 - e} for r in rows
                            for e in (1, 2, 3)])
    results.write_all(str(folder), table, history, meta)
    write_confirmation(folder, table, meta)
    return meta


def write_confirmation(folder, table: pd.DataFrame, meta: dict) -> None:
    """The default and the best trial at seeds 1-3, the best better by 0.2 at every seed."""
    chosen = confirmation.candidates(table, meta, 1)
    runs = pd.DataFrame([{"config_id": c.config_id, "sweep_trial": c.trial_id, "seed": seed, "status": "COMPLETED",
                          "stop_reason": "", "objective": (1.2 if c.config_id == "default" else 1.0) + seed / 100,
                          "epochs_done": 3, "wall_s": 10.0} for c in chosen for seed in (1, 2, 3)])
    runs = trial_stats.with_cost(runs, meta["resources"])
    summary = verdicts.summary(runs, chosen, "min")
    inside = folder / "confirm_top1_seeds3"
    inside.mkdir()
    runs.to_parquet(inside / confirmation.CONFIRM_FILE)
    summary.to_parquet(inside / confirmation.SUMMARY_FILE)
    (inside / confirmation.REPORT_FILE).write_text(
        f"confirmation: ...\nanswer:\n  {verdicts.answer(next(summary.iloc[1:].itertuples()), METRIC)}")
