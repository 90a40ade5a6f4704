"""A sweep's results as plain files beside Tune's experiment: trials.parquet (one row per trial),
history.parquet (one row per trial-epoch), best_config.json, PNG plots, and a printed report.

Shared by ray_jobs/sweep.py (at the end of a sweep) and ray_jobs/analyze.py (any time, also while
a sweep runs). Paths are pyarrow filesystem URIs or local paths.
"""

from __future__ import annotations

import io
import json
import math
import os
import re

import pandas as pd
import pyarrow.fs

from losstune.trainables.config import merge, to_dict, unflatten
from losstune.trainables.families import load_family, make_config
from losstune.trainables.family_api import CHECKPOINT_SCORE

META_FILE = "losstune_sweep.json"


def absolute(uri: str) -> str:
    """A URI as given; a plain local path made absolute (Ray's workers run in other folders)."""
    return uri if "://" in uri else os.path.abspath(uri)


def filesystem(uri: str):
    """(pyarrow filesystem, path inside it)."""
    return pyarrow.fs.FileSystem.from_uri(absolute(uri))


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def write_bytes(uri: str, data: bytes) -> None:
    fs, path = filesystem(uri)
    fs.create_dir(os.path.dirname(path), recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(data)


def check_writable(uri: str) -> None:
    """Write and remove a probe file in `uri` (created if missing: only its last folder, so that a
    path under an unmounted disk is not quietly made on the local one). OSError on failure."""
    fs, path = filesystem(uri)
    if "://" not in uri:
        parent = os.path.dirname(path.rstrip("/")) or "/"
        if os.path.exists(parent) and not os.path.isdir(parent):
            raise OSError(f"{parent} is a file, not a folder")
        if not os.path.isdir(parent):
            raise OSError(f"{parent} does not exist (a disk or share not mounted?); create it first")
    fs.create_dir(path, recursive=True)
    probe = f"{path}/.losstune_write_probe_{os.getpid()}"
    with fs.open_output_stream(probe) as out:
        out.write(b"probe")
    fs.delete_file(probe)


def read_json(uri: str) -> dict:
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as f:
        return json.loads(f.read().decode())


class SweepFolderError(ValueError):
    """A sweep folder that cannot be read as one; the message names the folder or file."""


META_NEEDS = ("family", "space", "objective", "default_point", "epochs", "trials", "base")


def read_meta(experiment: str) -> dict:
    """The sweep's saved definition (META_FILE), checked: a missing, corrupt or foreign file is a
    SweepFolderError naming it."""
    uri = f"{experiment}/{META_FILE}"
    if not exists(uri):
        raise SweepFolderError(f"{experiment}: not a losstune sweep (no {META_FILE})")
    try:
        meta = read_json(uri)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SweepFolderError(f"{uri}: corrupt ({type(err).__name__}: {err})") from None
    missing = [key for key in META_NEEDS if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise SweepFolderError(f"{uri}: not a losstune sweep definition (missing {', '.join(missing)})")
    return meta


def check_tune_state(experiment: str) -> None:
    """Tune writes experiment_state-*.json once the sweep has started; before that there is
    nothing to read."""
    fs, path = filesystem(experiment)
    names = [info.base_name for info in fs.get_file_info(pyarrow.fs.FileSelector(path))]
    if not any(name.startswith("experiment_state-") and name.endswith(".json") for name in names):
        raise SweepFolderError(f"{experiment}: no Tune experiment state yet (the sweep has not saved its first "
                               "snapshot); try again once its trials run")


def flatten(nested: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


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


RUNS_FOLDER = "trainer_runs"  # <experiment>/trainer_runs/<trial id>: each trial's TorchTrainer run
TRAIN_SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's record of a run's kept checkpoints
LOOP_STATE = "losstune_state.json"  # trainables.loop's file in each checkpoint


def stored_run(experiment: str, trial_id: str) -> dict:
    """What Ray stored of a trial's TorchTrainer run, whatever Tune recorded: Train's snapshot of
    its kept checkpoints ({} where it has none)."""
    uri = f"{experiment}/{RUNS_FOLDER}/{trial_id}/{TRAIN_SNAPSHOT}"
    if not experiment:
        return {}
    try:
        return read_json(uri) if exists(uri) else {}
    except (OSError, ValueError):  # a snapshot cut short: Tune's record stands
        return {}


def stored_history(experiment: str, trial_id: str, snapshot: dict) -> pd.DataFrame:
    """Every epoch's metrics up to the run's latest checkpoint, as the loop saved them in it."""
    latest = (snapshot.get("latest_checkpoint_result") or {}).get("checkpoint_dir_name")
    uri = f"{experiment}/{RUNS_FOLDER}/{trial_id}/{latest}/{LOOP_STATE}"
    try:
        return pd.DataFrame(read_json(uri).get("history", [])) if latest and exists(uri) else pd.DataFrame()
    except (OSError, ValueError):
        return pd.DataFrame()


def kept_best_checkpoint(experiment: str, trial_id: str, snapshot: dict, mode: str) -> str:
    """The best-scored checkpoint of those Ray Train keeps for the run (its snapshot), or ""."""
    kept = [r for r in snapshot.get("checkpoint_results", [])
            if math.isfinite(float((r.get("metrics") or {}).get(CHECKPOINT_SCORE, math.nan)))]
    if not kept:
        return ""
    pick = min if mode == "min" else max
    best = pick(kept, key=lambda r: float(r["metrics"][CHECKPOINT_SCORE]))
    return f"{experiment}/{RUNS_FOLDER}/{trial_id}/{best['checkpoint_dir_name']}"


def complete_history(history: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """Tune's history of a trial with the epochs only the run's checkpoint still has (Tune loses
    a trial's earlier reports when it restarts the trial after its driver died), one row per
    epoch: the last report of an epoch that was run twice (before and after a restart) is the one
    the final weights continue from."""
    if "epoch" not in history:
        return stored
    if len(stored) and "epoch" in stored:
        history = pd.concat([stored[~stored["epoch"].isin(history["epoch"])], history], ignore_index=True)
    return history.drop_duplicates("epoch", keep="last").sort_values("epoch", kind="stable").reset_index(drop=True)


def tables(result_grid, meta: dict, experiment: str = ""):
    """(trials, history) DataFrames from a Tune ResultGrid and the sweep's metadata; with the
    sweep's folder (`experiment`), each trial's history and best checkpoint as Ray stored its run."""
    metric, mode = meta["objective"]["metric"], meta["objective"]["mode"]
    default = meta["default_point"]
    family = load_family(meta["family"])
    rows, histories = [], []
    for result in result_grid:
        metrics = result.metrics or {}
        params = flatten(result.config or {})
        trial_id = metrics.get("trial_id") or os.path.basename(result.path).split("_")[-1]
        snapshot = stored_run(experiment, trial_id)
        history = complete_history(result.metrics_dataframe if result.metrics_dataframe is not None
                                   else pd.DataFrame(), stored_history(experiment, trial_id, snapshot))
        values = history[metric].dropna() if metric in history else pd.Series(dtype=float)
        row = {
            "trial_id": trial_id,
            "trial_index": launch_index(result.path, trial_id),
            "is_default": params == default,
            "status": trial_status(metrics, result.error, meta["epochs"]),
            "stop_reason": metrics.get("stop_reason") or ("error" if result.error is not None else ""),
            "epochs_done": int(metrics.get("epoch", 0)),
            "objective": metrics.get(metric, math.nan),
            "best_objective": (values.min() if mode == "min" else values.max()) if len(values) else math.nan,
            "wall_s": metrics.get("time_total_s", math.nan),
            "restarts": int(metrics.get("restarts", 0)),  # worker or node losses the trial resumed from
            "best_checkpoint": (kept_best_checkpoint(experiment, trial_id, snapshot, mode)
                                or best_checkpoint_path(history, mode)),
        }
        # validation and health metrics, also where the family reports them under its seed's names
        row.update({f"final/{k}": v for k, v in metrics.items() if family.own_metric_name(k).startswith(("val/", "health/"))})
        row.update({f"config/{k}": v for k, v in params.items()})
        row["error"] = error_summary(result.error) if result.error is not None else ""
        rows.append(row)
        if len(history):
            histories.append(history.assign(trial_id=trial_id))
    trials = pd.DataFrame(rows)
    if len(trials):
        trials = ranked(trials, mode)
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    if meta.get("objectives") and len(trials):
        trials["pareto"] = pareto_front(trials, meta["objectives"])
    return trials, history


RANK_TIERS = {"COMPLETED": 0, "EARLY_STOPPED": 1}  # every other status ranks after these, unranked


def ranked(trials: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Best first, at a common budget: the trials that ran every epoch by their last epoch's
    value, then those a scheduler stopped (their value is from an earlier epoch, not comparable:
    a default that worsens over the epochs would lose to a trial stopped at epoch 2), then the
    errored and unhealthy ones."""
    tier = trials["status"].map(RANK_TIERS).fillna(len(RANK_TIERS))
    value = trials["objective"].astype(float).where(tier < len(RANK_TIERS))
    return trials.assign(_tier=tier, _key=value if mode == "min" else -value).sort_values(
        ["_tier", "_key", "trial_id"], na_position="last").drop(columns=["_tier", "_key"]).reset_index(drop=True)


def best_checkpoint_path(history: pd.DataFrame, mode: str) -> str:
    """Where a trial wrote its best-scored checkpoint, the one Ray Train keeps beside the latest
    (trainables.driver.keep_checkpoints); "" where no epoch both checkpointed and validated."""
    if CHECKPOINT_SCORE not in history or "checkpoint_path" not in history:
        return ""  # a sweep from before checkpoints were scored
    scored = history.loc[history["checkpoint_path"].notna(), CHECKPOINT_SCORE].astype(float).dropna()
    if not len(scored):
        return ""
    return history.loc[scored.idxmin() if mode == "min" else scored.idxmax(), "checkpoint_path"]


def pareto_front(trials: pd.DataFrame, objectives: list[dict]) -> pd.Series:
    """Whether each trial is on the Pareto front of the final objectives: completed to full length
    and healthy (an ASHA-stopped trial's values are from an earlier epoch), and no other such trial
    at least as good in every objective and better in one."""
    signs = [1.0 if o["mode"] == "min" else -1.0 for o in objectives]
    columns = [f"final/{o['metric']}" for o in objectives]
    eligible = (trials["status"] == "COMPLETED") & trials[columns].notna().all(axis=1)
    points = trials.loc[eligible, columns].to_numpy(dtype=float) * signs
    on_front = pd.Series(False, index=trials.index)
    for index, point in zip(trials.index[eligible], points):
        dominated = ((points <= point).all(axis=1) & (points < point).any(axis=1)).any()
        on_front[index] = not dominated
    return on_front


def best_trial(trials: pd.DataFrame):
    """The top row if it is a healthy, finished trial, else None."""
    if len(trials) and trials.loc[0, "status"] in ("COMPLETED", "EARLY_STOPPED") and math.isfinite(
            trials.loc[0, "objective"]):
        return trials.loc[0]
    return None


def best_config(trials: pd.DataFrame, meta: dict) -> dict | None:
    """The best trial's whole effective config, the form ray_jobs/train.py --config takes."""
    best = best_trial(trials)
    if best is None:
        return None
    params = {k[len("config/"):]: _plain(v) for k, v in best.items() if k.startswith("config/") and not _missing(v)}
    overrides = merge(meta["base"], unflatten(params))
    return to_dict(make_config(load_family(meta["family"]), overrides, meta.get("preset", "")))


def write_all(experiment_uri: str, trials: pd.DataFrame, history: pd.DataFrame, meta: dict) -> dict:
    """Write the tables, best config and plots; returns {what: uri}."""
    written = {}
    for name, frame in (("trials", trials), ("history", history)):
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        written[name] = f"{experiment_uri}/{name}.parquet"
        write_bytes(written[name], buffer.getvalue())
    config = best_config(trials, meta)
    if config is not None:
        written["best_config"] = f"{experiment_uri}/best_config.json"
        write_bytes(written["best_config"], json.dumps(config, indent=2).encode())
    for name, png in plots(trials, history, meta).items():
        written[name] = f"{experiment_uri}/{name}.png"
        write_bytes(written[name], png)
    return written


# One look per kind of trial in every panel: the documented default always orange
DEFAULT_STYLE = {"color": "tab:orange", "linewidth": 2.5, "zorder": 3}
STYLES = {"COMPLETED": {"color": "tab:blue", "linewidth": 1.0},
          "EARLY_STOPPED": {"color": "tab:cyan", "linewidth": 1.0, "linestyle": "--"}}
FAILED_STYLE = {"color": "tab:gray", "linewidth": 1.0, "linestyle": ":"}
LEGEND = {"documented default": DEFAULT_STYLE, "completed": STYLES["COMPLETED"],
          "stopped early (scheduler)": STYLES["EARLY_STOPPED"], "errored or unhealthy": FAILED_STYLE}


def better(mode: str) -> str:
    """How a figure or table says which way an objective improves."""
    return "lower" if mode == "min" else "higher"


def style_of(trial) -> dict:
    return DEFAULT_STYLE if trial["is_default"] else STYLES.get(trial["status"], FAILED_STYLE)


def watched_metrics(meta: dict, history: pd.DataFrame) -> list[str]:
    """The validation metrics the family's health checks watch (hdr_patch's val/overflow_frac), plotted
    beside the objective."""
    family = load_family(meta["family"])
    return [f"val/{name}" for name in family.watched_val_metrics if f"val/{name}" in history]


def plots(trials: pd.DataFrame, history: pd.DataFrame, meta: dict) -> dict[str, bytes]:
    """The final objective of every trial, each trial's objective and watched metrics by epoch, and
    the Pareto front (multi-objective)."""
    if not len(trials) or not len(history):
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, mode = meta["objective"]["metric"], meta["objective"]["mode"]
    by_epoch = [metric] + watched_metrics(meta, history)
    figure, axes = plt.subplots(1, 1 + len(by_epoch), figsize=(6 + 5 * len(by_epoch), 4.8))
    final_values(axes[0], trials, metric, mode)
    for panel, name in zip(axes[1:], by_epoch):
        curves(panel, trials, history, name, mode if name == metric else "min")
    handles = [matplotlib.lines.Line2D([], [], **look) for look in LEGEND.values()]
    figure.legend(handles, list(LEGEND), loc="lower center", ncol=len(LEGEND), fontsize=8, frameon=False)
    pngs = {"objective": png(figure, rect=(0, 0.06, 1, 1))}  # room for the legend below
    if meta.get("objectives") and "pareto" in trials:
        pngs["pareto"] = pareto_plot(trials, meta["objectives"])
    return pngs


def final_values(axes, trials: pd.DataFrame, metric: str, mode: str) -> None:
    """A dot per trial at its last value, labelled with it and the epoch it was taken at, the axis
    spanning the values (not from 0), so that a 1% difference shows. Trials without a value are
    listed at the bottom."""
    rows = list(trials.iterrows())[::-1]  # best at the top
    values = trials["objective"].astype(float)
    finite = values[values.map(math.isfinite)]
    low, high = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
    pad = (high - low) * 0.15 or abs(high) * 0.05 or 1.0
    for y, (_, trial) in enumerate(rows):
        look = style_of(trial)
        value = float(trial["objective"])
        if math.isfinite(value):
            axes.plot([value], [y], "o", color=look["color"], markersize=8 if trial["is_default"] else 6,
                      markerfacecolor="none" if look is STYLES["EARLY_STOPPED"] else look["color"])
            axes.annotate(f" {value:.4g} @{int(trial['epochs_done'])}", (value, y), fontsize=7, va="center")
        else:
            axes.annotate(f"no value ({trial['status']})", (low - 0.9 * pad, y), fontsize=7, va="center",
                          color="tab:gray")
    axes.set_yticks(range(len(rows)), [("* " if t["is_default"] else "") + t["trial_id"] for _, t in rows], fontsize=7)
    axes.set_xlim(low - pad, high + 2 * pad)
    axes.set_ylim(-0.6, len(rows) - 0.4)
    axes.set(title=f"final {metric} ({better(mode)} is better; @epoch)", xlabel=metric)
    axes.grid(axis="x", alpha=0.3)


def curves(axes, trials: pd.DataFrame, history: pd.DataFrame, name: str, mode: str) -> None:
    """Each trial's `name` by epoch, styled by how the trial ended; whole epochs on the axis."""
    from matplotlib.ticker import MaxNLocator

    kinds = trials.set_index("trial_id")
    for trial_id, frame in history.groupby("trial_id"):
        if name in frame and trial_id in kinds.index:
            look = style_of(kinds.loc[trial_id])
            axes.plot(frame["epoch"], frame[name], marker=".", **look)
    axes.set(title=f"{name} by epoch ({better(mode)} is better)", xlabel="epoch", ylabel=name)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)


def png(figure, rect=(0, 0, 1, 1)) -> bytes:
    import matplotlib.pyplot as plt

    figure.tight_layout(rect=rect)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def pareto_plot(trials: pd.DataFrame, objectives: list[dict]) -> bytes:
    """The first two objectives of every completed trial: the front joined and labelled, the
    documented default in its own colour; the legend lists only what is drawn."""
    import matplotlib.pyplot as plt

    x, y = (f"final/{o['metric']}" for o in objectives[:2])
    figure, axes = plt.subplots(figsize=(6, 5))
    done = trials[trials["status"] == "COMPLETED"]
    front = done[done["pareto"]].sort_values(x)
    dominated = done[~done["pareto"] & ~done["is_default"]]
    if len(dominated):
        axes.scatter(dominated[x], dominated[y], color="tab:gray", label="completed, dominated")
    if len(front):
        axes.plot(front[x], front[y], "o-", color="tab:blue", label="Pareto front")
    default = done[done["is_default"]]
    if len(default):
        axes.scatter(default[x], default[y], color="tab:orange", s=80, zorder=3, label="documented default")
    for _, row in front.iterrows():
        axes.annotate(row["trial_id"], (row[x], row[y]), fontsize=7)
    axes.set(xlabel=f"{x[len('final/'):]} ({better(objectives[0]['mode'])} is better)",
             ylabel=f"{y[len('final/'):]} ({better(objectives[1]['mode'])} is better)",
             title="objectives of the completed trials")
    axes.legend(fontsize=8)
    return png(figure)


def report(trials: pd.DataFrame, meta: dict, written: dict, top: int = 10) -> str:
    """The printed summary: the top trials against the documented default."""
    metric = meta["objective"]["metric"]
    if not len(trials):
        return "no trials finished"
    shown = trials.head(top)
    default_rows = trials[trials["is_default"]]
    if len(default_rows) and not shown["is_default"].any():
        shown = pd.concat([shown, default_rows])
    params = [c for c in trials.columns if c.startswith("config/")]
    extra = [c for c in trials.columns if c.startswith("final/val/") and c != f"final/{metric}"][:3]
    table = shown[["trial_id", "status", "stop_reason", "epochs_done", "objective"] + extra + params].copy()
    table.insert(0, "", ["*" if d else "" for d in shown["is_default"]])
    table.columns = [{"epochs_done": "at_epoch"}.get(c, c.replace("config/", "").replace("final/", ""))
                     for c in table.columns]
    lines = [f"{meta['family']} / space '{meta['space']}': {len(trials)} trials, objective {metric} "
             f"({better(meta['objective']['mode'])} is better; its value at_epoch; trials that ran every epoch "
             "rank first); * = documented default",
             table.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
    best = best_trial(trials)
    if best is not None:
        lines.append(f"best {best['trial_id']}: {metric} {best['objective']:.4g} at epoch {best['epochs_done']} "
                     f"({best['status']}); " + against_default(best, default_rows))
    if best is not None and best.get("best_checkpoint"):
        lines.append(f"best trial's best checkpoint: {best['best_checkpoint']}")
    elif best is None:
        lines.append("no healthy finished trial: no best config written")
    if meta.get("objectives") and "pareto" in trials:
        columns = ["trial_id"] + [f"final/{o['metric']}" for o in meta["objectives"]]
        front = trials.loc[trials["pareto"], columns]
        lines.append(f"Pareto front ({len(front)} of {len(trials)} trials; column 'pareto' in trials.parquet):")
        lines.append(front.to_string(index=False, float_format=lambda v: f"{v:.4g}") if len(front) else "  (empty)")
    lines += [f"{name}: {uri}" for name, uri in written.items()]
    return "\n".join(lines)


def against_default(best, default_rows: pd.DataFrame) -> str:
    """The best trial's change against the documented default, only where the default ran to its
    last epoch healthy: a default that errored, stopped unhealthy or was cut short is no baseline."""
    if not len(default_rows):
        return "the documented default is not among the trials: no change reported"
    default = default_rows.iloc[0]
    base = default["objective"]
    if default["status"] != "COMPLETED" or not math.isfinite(base):
        why = default.get("error") or default["stop_reason"] or f"{default['epochs_done']} epochs"
        return f"the documented default did not finish ({default['status']}: {why}): no change reported"
    change = (best["objective"] - base) / abs(base) * 100 if base else math.nan
    return f"documented default: {base:.4g} (COMPLETED); change {change:+.1f}%"


def error_summary(error) -> str:
    """The innermost `SomeError: message` line of a (chained, remote) error."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    raised = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", line)]
    return (raised or [line for line in lines if line] or [type(error).__name__])[-1]


def _plain(value):
    """numpy scalars (as pandas hands them out) -> Python values."""
    return value.item() if hasattr(value, "item") else value


def _missing(value) -> bool:
    return value is None or isinstance(value, float) and math.isnan(value)
