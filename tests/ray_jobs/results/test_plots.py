"""The sweep's figures (ray_jobs/results/plots.py), drawn on small tables."""

import pandas as pd

from losstune.ray_jobs.results.ranking import ranked
from losstune.ray_jobs.results.trial_stats import pareto_front
from tests.ray_jobs.results.test_tables import OBJECTIVES, trials_table


def drawn_figures(monkeypatch) -> list:
    """The matplotlib figures ray_jobs.results.plots draws, kept instead of turned into PNG bytes."""
    import losstune.ray_jobs.results.plots as plots

    figures = []
    monkeypatch.setattr(plots, "png", lambda figure, rect=None: figures.append(figure) or b"")
    return figures


def hdr_history(trials: pd.DataFrame) -> pd.DataFrame:
    rows = [{"trial_id": t, "epoch": e, "val/log_l1": 1.0 + 0.1 * e, "val/overflow_frac": 0.01}
            for t, n in zip(trials["trial_id"], trials["epochs_done"]) for e in range(1, n + 1)]
    return pd.DataFrame(rows)


def test_the_plots_show_the_default_alike_everywhere_and_stopped_trials_apart(monkeypatch):
    import matplotlib.colors

    from losstune.ray_jobs.results.plots import plots

    figures = drawn_figures(monkeypatch)
    trials = ranked(trials_table(), "min").assign(objective=[3.00, 3.03, 3.5, 4.0, 3.2, float("nan")])
    plots(trials, hdr_history(trials), {"family": "hdr_patch", "objective": {"metric": "val/log_l1", "mode": "min"}})
    final, by_epoch, overflow = figures[0].axes
    # hdr_patch's watched val/overflow_frac has its own panel; titles say which way is better
    assert overflow.get_title() == "val/overflow_frac by epoch (lower is better)"
    assert "lower is better" in final.get_title() and "lower is better" in by_epoch.get_title()
    # the default (t1) is orange in both panels, the ASHA-stopped t5 dashed, no other line orange
    orange = matplotlib.colors.to_rgba("tab:orange")
    colours = [matplotlib.colors.to_rgba(line.get_color()) for line in by_epoch.get_lines()]
    assert colours.count(orange) == 1
    (default_dot,) = [line for line in final.get_lines() if matplotlib.colors.to_rgba(line.get_color()) == orange]
    assert default_dot.get_xdata()[0] == 3.0
    assert [line.get_linestyle() for line in by_epoch.get_lines()].count("--") == 1
    # a 1% difference shows: the axis spans the values, not 0 to the largest
    assert final.get_xlim()[0] > 2.5
    assert all(float(tick).is_integer() for tick in by_epoch.get_xticks())


def test_the_pareto_legend_lists_only_what_is_drawn(monkeypatch):
    from losstune.ray_jobs.results.plots import pareto_plot

    figures = drawn_figures(monkeypatch)
    trials = trials_table().assign(pareto=lambda t: pareto_front(t, OBJECTIVES))
    pareto_plot(trials[trials["trial_id"].isin(["t1", "t2"])], OBJECTIVES)  # both on the front
    labels = [text.get_text() for text in figures[0].axes[0].get_legend().get_texts()]
    assert labels == ["Pareto front", "documented default"]
