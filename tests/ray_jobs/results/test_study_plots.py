"""Optuna's plots of a study in the report (ray_jobs/results/study_plots.py): what each is asked to draw."""

import optuna
import pytest

from losstune.ray_jobs.results import study as studies
from losstune.ray_jobs.results import study_plots
from losstune.trainables.registry import load_family


def hdr_patch_study(n: int):
    """n completed trials of hdr_patch's `all` space (16 parameters over two switches), at random
    values: what a sweep's study holds."""
    space = load_family("hdr_patch").spaces["all"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_metric_names(["val/log_l1"])
    study.optimize(lambda trial: space(trial) or trial.params.get("caps/alpha", 1.0) + trial.number * 0.01, n_trials=n)
    return study


@pytest.fixture
def asked(monkeypatch):
    """{Optuna plot: [the parameters each call asked for]}, the plots still drawn."""
    calls = {}
    draw = study_plots.optuna_plot

    def recording(name, study, **kwargs):
        calls.setdefault(name, []).append((kwargs.get("params"), study))
        return draw(name, study, **kwargs)
    monkeypatch.setattr(study_plots, "optuna_plot", recording)
    return calls


def test_each_plot_shows_few_enough_parameters_to_read_and_parallel_axes_only_where_a_branch_has_them(asked):
    study = hdr_patch_study(9)
    switches = studies.switch_params([t.params for t in hdr_patch_study(64).trials])
    assert switches == ["caps/clamp_enabled", "caps/mode"]
    table = studies.importance(study, "val/log_l1", [])  # the default evaluator's ranking: what the slice takes
    pngs = study_plots.study_plots(study, {"objective": {"metric": "val/log_l1"}, "default_point": {}}, table, switches)
    # the slice: the four most important parameters of 16, in a figure as wide as the report
    [(sliced, _)] = asked["plot_slice"]
    assert sliced == study_plots.ranked_params(studies.completed(study), table)[:4]
    width = int.from_bytes(pngs["optuna_slice"][16:20], "big")  # the PNG header's width
    # the figure's width, give or take what the tight bounding box trims or adds at its edges
    assert abs(width - 4 * study_plots.PANEL_INCHES * 90) < 60 and width <= 1200
    # parallel coordinates per branch, over at most 6 parameters that every trial of the branch has
    parallel = {name for name in pngs if name.startswith("optuna_parallel")}
    assert parallel == {f"optuna_parallel_{study_plots.slug(b)}" for b, trials in
                        studies.branches(studies.completed(study), switches).items() if len(trials) >= 2}
    for params, branch_study in asked["plot_parallel_coordinate"]:
        assert 0 < len(params) <= 6 and all(p in t.params for t in branch_study.trials for p in params)
    # 9 trials draw no contour; 12 do
    assert "optuna_contour" not in pngs
    study = hdr_patch_study(12)
    more = study_plots.study_plots(study, {"objective": {"metric": "val/log_l1"}, "default_point": {}},
                                   table[table["evaluator"] == "none"], switches)  # ranked by trials: no importance
    assert "optuna_contour" in more


def test_optunas_interactive_plots_run_where_losstune_is_installed():
    # docs/results.md: `optuna.visualization.plot_rank(study)` on a sweep's study; Optuna's
    # interactive plots need plotly, a dependency of losstune
    figure = optuna.visualization.plot_rank(hdr_patch_study(6), params=["caps/mode", "model/output_norm"])
    assert type(figure).__module__.startswith("plotly") and len(figure.data) > 0


def test_a_label_past_the_figures_edge_is_drawn_not_cut():
    # Optuna's parallel coordinates cut long axis labels ("model/learnable_s...") at the canvas edge
    import io

    import matplotlib
    import matplotlib.pyplot as plt
    from PIL import Image

    from losstune.ray_jobs.results.plots import png

    matplotlib.use("Agg")
    figure, axes = plt.subplots(figsize=(3, 2))
    axes.set_yticks([0.5], ["model/learnable_scale_per_channel_of_the_output"])
    width = Image.open(io.BytesIO(png(figure))).size[0]
    assert width > 3 * 90  # grown past the 270 px canvas to hold the label


@pytest.mark.parametrize("n_params", [1, 4])
def test_the_slice_plots_colour_bar_stands_beside_its_panels(monkeypatch, n_params):
    # issue 73, item 13: tight_layout did not know Optuna's colour bar and drew the last panel under it
    drawn, real_png = {}, study_plots.png

    def keeping(figure, **kwargs):  # the PNG drawn as in a report, its figure kept to measure
        drawn["figure"] = figure
        return real_png(figure, **kwargs)
    monkeypatch.setattr(study_plots, "png", keeping)
    study = hdr_patch_study(9)
    params = [p for p in study_plots.ranked_params(studies.completed(study), []) if study_plots.numeric(study.trials[0], p)]
    study_plots.marked_slice(study, study.trials[0], 0, params[:n_params], {"target": None, "target_name": "val/log_l1"})
    figure = drawn["figure"]
    panels = [a for a in figure.axes if a.get_xlabel() in params]
    [bar] = [a for a in figure.axes if a not in panels]
    assert len(panels) == n_params and bar.get_ylabel() == "Trial"
    assert all(panel.get_position().x1 < bar.get_position().x0 for panel in panels)
