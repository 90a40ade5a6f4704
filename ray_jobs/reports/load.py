"""Read a sweep in Python, e.g. in a notebook:

    from losstune.ray_jobs.reports.load import load_sweep

    sweep = load_sweep("results/hdr_patch-caps-20261125-142609")
    sweep.trials              # one row per trial, best first; is_default marks the documented default
    sweep.confirmations       # {"confirm_top2_seeds3": Confirmation(runs, summary, text)}

A losstune-compare folder reads the same way: its meta["kind"] is "compare", its confirmations
{"compare_seeds5": ...}, and it has no trials, history or importance (empty tables).
    sweep.importance          # one row per evaluator, branch and parameter
    sweep.study()             # the optuna.Study, for optuna.visualization or your own analysis

Everything comes from the files a sweep (or losstune-analyze) wrote in its folder, local or a
pyarrow URI (s3://...); nothing starts Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow.fs

from losstune.ray_jobs.confirmation.runs import CONFIRM_FILE, REPORT_FILE, SUMMARY_FILE
from losstune.ray_jobs.results.tables import SweepFolderError, read_meta, read_trials
from losstune.ray_jobs.core.storage import absolute, exists, join, listing, read_bytes_of, read_checked, read_parquet
from losstune.ray_jobs.results.study import IMPORTANCE_FILE, load_study

REPORT_HTML = "report.html"


@dataclass(frozen=True)
class Confirmation:
    runs: pd.DataFrame  # confirm.parquet: one row per config and seed
    summary: pd.DataFrame  # per config: mean, 95% CI, paired difference to the default, verdict
    text: str  # the printed confirmation


@dataclass(frozen=True)
class Sweep:
    path: str
    meta: dict  # losstune_sweep.json: the sweep's definition, provenance
    trials: pd.DataFrame
    history: pd.DataFrame
    importance: pd.DataFrame
    confirmations: dict = field(default_factory=dict)  # folder name -> Confirmation
    figures: list = field(default_factory=list)  # the PNG files in the folder, by name

    def study(self):
        """The sweep's optuna.Study (read from optuna_study.journal), or None."""
        return load_study(self.path)


def load_sweep(path: str) -> Sweep:
    """A sweep's tables, confirmations and figure names; SweepFolderError naming the folder where it is
    no sweep or has no trials.parquet yet (losstune-analyze writes one while a sweep runs)."""
    path = absolute(str(path).rstrip("/"))
    meta = read_meta(path)
    if meta.get("kind") == "compare":  # losstune-compare: configs given, no search, no trials table
        return Sweep(path=path, meta=meta, trials=pd.DataFrame(), history=pd.DataFrame(), importance=pd.DataFrame(),
                     confirmations=confirmations(path), figures=figures(path))
    if not exists(join(path, "trials.parquet")):
        raise SweepFolderError(f"{path}: no trials.parquet yet: let the sweep finish, or run losstune-analyze on it")
    return Sweep(path=path, meta=meta, trials=read_trials(path),
                 history=optional_table(join(path, "history.parquet")),
                 importance=optional_table(join(path, IMPORTANCE_FILE)),
                 confirmations=confirmations(path), figures=figures(path))


def optional_table(uri: str) -> pd.DataFrame:
    return read_parquet(uri) if exists(uri) else pd.DataFrame()


def confirmations(path: str) -> dict[str, Confirmation]:
    """Each finished confirmation of the sweep (a confirm_top<K>_seeds<N> folder with its summary)."""
    found = {}
    for info in listing(path):
        folder = join(path, info.base_name)
        if info.type == pyarrow.fs.FileType.Directory and exists(join(folder, SUMMARY_FILE)):
            found[info.base_name] = Confirmation(
                read_checked(join(folder, CONFIRM_FILE), read_parquet, "confirmation table"),
                read_checked(join(folder, SUMMARY_FILE), read_parquet, "confirmation summary"),
                read_checked(join(folder, REPORT_FILE), lambda uri: read_bytes_of(uri).decode(), "confirmation report"))
    return found


def figures(path: str) -> list[str]:
    return [info.base_name for info in listing(path) if info.base_name.endswith(".png")]


__all__ = ["load_sweep", "Sweep", "Confirmation", "SweepFolderError"]
