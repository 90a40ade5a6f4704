"""A sweep's figures: each trial's objective, the watched metrics per epoch, and the Pareto front,
with the documented default one colour everywhere and stopped trials drawn apart."""

from __future__ import annotations

import io
import math

import pandas as pd

from losstune.trainables.registry import load_family

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
    # here, not at the top: loads matplotlib only where this runs
    import matplotlib

    matplotlib.use("Agg")
    # here, not at the top: loads matplotlib only where this runs
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
    # here, not at the top: loads matplotlib only where this runs
    from matplotlib.ticker import MaxNLocator

    kinds = trials.set_index("trial_id")
    for trial_id, frame in history.groupby("trial_id"):
        if name in frame and trial_id in kinds.index:
            look = style_of(kinds.loc[trial_id])
            axes.plot(frame["epoch"], frame[name], marker=".", **look)
    axes.set(title=f"{name} by epoch ({better(mode)} is better)", xlabel="epoch", ylabel=name)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)


def png(figure, rect=(0, 0, 1, 1), layout: bool = True) -> bytes:
    """The figure as PNG bytes, closed; `layout=False` keeps a layout the caller made."""
    # here, not at the top: loads matplotlib only where this runs
    import matplotlib.pyplot as plt

    if layout:
        figure.tight_layout(rect=rect)
    buffer = io.BytesIO()
    # "tight": what lies outside the canvas (Optuna's long axis labels, "model/learnable_s...") is
    # drawn, the picture grown to hold it
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight", pad_inches=0.1)
    plt.close(figure)
    return buffer.getvalue()


def pareto_plot(trials: pd.DataFrame, objectives: list[dict]) -> bytes:
    """The first two objectives of every completed trial: the front joined and labelled, the
    documented default in its own colour; the legend lists only what is drawn."""
    # here, not at the top: loads matplotlib only where this runs
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
