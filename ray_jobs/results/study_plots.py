"""Optuna's own plots of a sweep's study (optuna.visualization.matplotlib), as PNGs sized for the
report: optimisation history, parallel coordinates per branch of the space, slice of the most
important few parameters, contour of the two most important (from enough trials), EDF,
importances (whole study and per branch), and the Pareto front where the sweep has several
objectives. Each reads the objective's name; the documented default is marked in orange where the
plot has a place for one point (history, slice, contour, EDF, Pareto front)."""

from __future__ import annotations

import math
import warnings

import optuna
import pandas as pd

from losstune.ray_jobs.results import study as studies
from losstune.ray_jobs.results.plots import DEFAULT_STYLE, png
from losstune.ray_jobs.core.storage import join, write_bytes, write_parquet

MARK = {"color": DEFAULT_STYLE["color"], "marker": "*", "s": 220, "zorder": 5, "edgecolors": "black",
        "label": "documented default"}


def study_files(experiment: str, meta: dict) -> dict[str, str]:
    """Write the study's importance.parquet and Optuna's plots beside the sweep's other results;
    returns {what: uri} (nothing where the sweep has no study journal)."""
    study = studies.load_study(experiment)
    if study is None:
        return {}
    switches = list(studies.space_switches(meta))
    table = studies.importance(study, meta["objective"]["metric"], switches)
    written = {"importance": join(experiment, studies.IMPORTANCE_FILE)}
    write_parquet(written["importance"], table)
    for name, data in study_plots(study, meta, table, switches).items():
        written[name] = join(experiment, f"{name}.png")
        write_bytes(written[name], data)
    return written


def default_trial(study, default_point: dict):
    """The study's trial of the documented default (the sweep enqueues it first), or None."""
    return next((t for t in study.trials if t.params == default_point), None)


SLICE_PARAMS = 4  # the most important few: a row of panels that stays readable at the report's width
PARALLEL_PARAMS = 6  # axes of one parallel-coordinates plot
MIN_CONTOUR_TRIALS = 10  # below it Optuna's contour draws a smooth surface from a few points
PANEL_INCHES = 3.2  # the width of one panel of a slice plot


def study_plots(study, meta: dict, table: pd.DataFrame, switches: list[str] = ()) -> dict[str, bytes]:
    """{"optuna_history": png, ...}: every plot the study has enough completed trials for; a
    parallel-coordinates plot per branch of the space's `switches` (study.switch_params)."""
    # here, not at the top: loads matplotlib only where this runs
    import matplotlib

    matplotlib.use("Agg")
    metric = meta["objective"]["metric"]
    index = studies.objective_index(study, metric)
    done = studies.completed(study)
    if len(done) < 2:
        return {}
    default = default_trial(study, meta["default_point"])
    value = (lambda t: t.values[index]) if study.metric_names and len(study.directions) > 1 else None
    common = dict(target=value, target_name=metric)
    ranked = ranked_params(done, table)
    top = ranked[:2]
    plots = {"optuna_history": lambda: marked_history(study, default, index, common),
             "optuna_slice": lambda: marked_slice(study, default, index, ranked[:SLICE_PARAMS], common),
             "optuna_edf": lambda: marked_edf(study, default, index, common)}
    if len(top) == 2 and sum(all(p in t.params for p in top) for t in done) >= MIN_CONTOUR_TRIALS:
        plots["optuna_contour"] = lambda: marked_contour(study, default, top, common)
    if len(study.directions) > 1:
        plots["optuna_pareto"] = lambda: marked_pareto(study, default)
    pngs = {name: draw() for name, draw in plots.items()}
    pngs |= parallel_plots(study, done, ranked, list(switches), common)
    return pngs | (importance_plots(study, table, index, metric) if len(table) else {})


def ranked_params(done: list, table: pd.DataFrame) -> list[str]:
    """The study's parameters, the most important first (the importance table's default
    evaluator), then the rest by how many completed trials have them."""
    by_trials = sorted({p for t in done for p in t.params}, key=lambda p: -sum(p in t.params for t in done))
    first = studies.most_important(table, len(by_trials)) if len(table) else []
    return first + [p for p in by_trials if p not in first]


def parallel_plots(study, done: list, ranked: list[str], switches: list[str], common: dict) -> dict[str, bytes]:
    """Parallel coordinates per branch (the whole study where the space has no switch), over the
    parameters every trial of the branch has and that vary there, the most important first: an axis
    a branch never sets would hold only Optuna's "None" level."""
    groups = studies.branches(done, switches) or {"": done}
    pngs = {}
    for branch, trials in groups.items():
        shared = set.intersection(*(set(t.params) for t in trials))
        varied = [p for p in ranked if p in shared and len({str(t.params[p]) for t in trials}) > 1]
        if len(trials) < 2 or not varied:
            continue
        axes = optuna_plot("plot_parallel_coordinate", studies.sub_study(study, trials),
                           params=varied[:PARALLEL_PARAMS], **common)
        if branch:  # in the place of Optuna's own title, which the left one overlapped
            axes.set_title(f"Parallel coordinates, {branch} (n={len(trials)})")
        pngs[f"optuna_parallel_{slug(branch)}" if branch else "optuna_parallel"] = to_png(axes)
    return pngs


def optuna_plot(name: str, *args, **kwargs):
    """An optuna.visualization.matplotlib plot, its experimental-API warning silenced."""
    # here, not at the top: loads optuna, matplotlib only where this runs
    import optuna.visualization.matplotlib as plots

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(plots, name)(*args, **kwargs)


def to_png(axes) -> bytes:
    """The PNG of the figure of an Axes or an array of them (Optuna's colour bars upset
    tight_layout, which says so and lays out the rest)."""
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return png(first.figure)


def finite_value(trial, index: int) -> float | None:
    value = trial.values[index] if trial is not None and trial.values else None
    return value if value is not None and math.isfinite(value) else None


def numeric(trial, param: str) -> bool:
    """Whether the trial has `param` on a numeric axis (Optuna draws categorical ones by position)."""
    kinds = (optuna.distributions.FloatDistribution, optuna.distributions.IntDistribution)
    return param in trial.params and isinstance(trial.distributions[param], kinds)


def marked_history(study, default, index: int, common: dict) -> bytes:
    axes = optuna_plot("plot_optimization_history", study, **common)
    value = finite_value(default, index)
    if value is not None:
        axes.scatter([default.number], [value], **MARK)
        axes.legend(fontsize=8)
    return to_png(axes)


def marked_slice(study, default, index: int, params: list[str], common: dict) -> bytes:
    axes = optuna_plot("plot_slice", study, params=params, **common)
    value = finite_value(default, index)
    panels = list(axes.flat if hasattr(axes, "flat") else [axes])
    panels[0].figure.set_size_inches(max(PANEL_INCHES * len(panels), 6.4), 4.0)
    for panel in panels:
        param = panel.get_xlabel()
        if value is not None and numeric(default, param):
            panel.scatter([default.params[param]], [value], **MARK)
    return with_colour_bar_aside(panels)


def with_colour_bar_aside(panels: list) -> bytes:
    """The PNG of a slice plot, its colour bar drawn again beside the panels under matplotlib's
    constrained layout: tight_layout does not know Optuna's bar, and drew the last panel under it."""
    figure = panels[0].figure
    for bar in [a for a in figure.axes if a not in panels]:
        label = bar.get_ylabel()
        bar.remove()
        figure.set_layout_engine("constrained")
        # the bar's colours are those of the trials' scatter Optuna drew first in each panel
        figure.colorbar(panels[-1].collections[0], ax=panels, label=label)
    return png(figure, layout=False)


def marked_contour(study, default, params: list[str], common: dict) -> bytes:
    axes = optuna_plot("plot_contour", study, params=params, **common)
    if default is not None and all(numeric(default, p) for p in params):
        axes.scatter([default.params[params[0]]], [default.params[params[1]]], **MARK)
        axes.legend(fontsize=8)
    return to_png(axes)


def marked_edf(study, default, index: int, common: dict) -> bytes:
    axes = optuna_plot("plot_edf", study, **common)
    value = finite_value(default, index)
    if value is not None:
        axes.axvline(value, color=MARK["color"], linewidth=2, label="documented default")
        axes.legend(fontsize=8)
    return to_png(axes)


def marked_pareto(study, default) -> bytes:
    axes = optuna_plot("plot_pareto_front", study, target_names=study.metric_names)
    if default is not None and default.values and all(math.isfinite(v) for v in default.values[:2]):
        axes.scatter([default.values[0]], [default.values[1]], **MARK)
        axes.legend(fontsize=8)
    return to_png(axes)


def importance_plots(study, table: pd.DataFrame, index: int, metric: str) -> dict[str, bytes]:
    """Optuna's importance plot for each evaluator and branch of the importance table, drawn from the
    table's scores (Optuna would otherwise fit fANOVA's forests a second time)."""
    pngs = {}
    for (evaluator, branch), rows in table.groupby(["evaluator", "branch"], sort=False):
        axes = optuna_plot("plot_param_importances", study, evaluator=Scores(rows), params=rows["param"].tolist(),
                           target=lambda t: t.values[index], target_name=metric)
        axes.set_title(f"{evaluator}, {branch} (n={rows['n_trials'].iloc[0]})", loc="left")  # Optuna's own title's place
        pngs[f"optuna_importance_{evaluator}_{slug(branch)}"] = to_png(axes)
    return pngs


def slug(branch: str) -> str:
    """A file-name-safe form of a branch ("caps/mode=B" -> "caps-mode-B")."""
    return "".join(c if c.isalnum() else "-" for c in branch)


class Scores(optuna.importance.BaseImportanceEvaluator):
    """An importance evaluator that hands Optuna's plot the scores study.importance computed."""

    def __init__(self, rows: pd.DataFrame):
        self.scores = dict(zip(rows["param"], rows["importance"]))

    def evaluate(self, study, params=None, *, target=None) -> dict[str, float]:
        return {param: self.scores[param] for param in params or self.scores}
