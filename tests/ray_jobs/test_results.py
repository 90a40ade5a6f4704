import pandas as pd

from losstune.ray_jobs.results import best_checkpoint_path, pareto_front, ranked, report

OBJECTIVES = [{"metric": "val/a", "mode": "min"}, {"metric": "val/b", "mode": "min"}]


def trials_table():
    return pd.DataFrame({
        "trial_id": ["t1", "t2", "t3", "t4", "t5", "t6"],
        "status": ["COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED", "EARLY_STOPPED", "STOPPED"],
        "is_default": [True, False, False, False, False, False],
        "stop_reason": ["", "", "", "", "", "identity_mapping"],
        "epochs_done": [4, 4, 4, 4, 2, 4],
        "objective": [3.0, 3.0, 4.0, 3.5, 0.5, 0.1],
        # t1 (1, 2) and t2 (2, 1) trade off; t3 (2, 2) is dominated by both; t4 (1, 2.5) by t1;
        # t5 and t6 would dominate everything but did not complete healthy
        "final/val/a": [1.0, 2.0, 2.0, 1.0, 0.1, 0.0],
        "final/val/b": [2.0, 1.0, 2.0, 2.5, 0.1, 0.0],
    })


def test_pareto_front_of_completed_trials_only():
    assert pareto_front(trials_table(), OBJECTIVES).tolist() == [True, True, False, False, False, False]


def test_pareto_front_respects_max_mode():
    # maximising b: t4 (1, 2.5) now beats t1 (1, 2); t2 (2, 1) and t3 (2, 2) lose to t4 on both
    objectives = [OBJECTIVES[0], {"metric": "val/b", "mode": "max"}]
    assert pareto_front(trials_table(), objectives).tolist() == [False, False, False, True, False, False]


def test_report_lists_the_front():
    trials = trials_table().assign(pareto=lambda t: pareto_front(t, OBJECTIVES))
    meta = {"family": "lgt", "space": "weights", "objective": {"metric": "val/e", "mode": "min"},
            "objectives": OBJECTIVES}
    text = report(trials, meta, {})
    assert "Pareto front (2 of 6 trials" in text and "t2" in text.split("Pareto front")[1]


def test_a_stopped_trial_never_outranks_the_completed_ones():
    # t5, stopped by ASHA at epoch 2 with 0.5, beats every completed value (3.0-4.0) only because
    # it was judged earlier; t6 (0.1) stopped unhealthy. Completed by value (t1 and t2 tie at 3.0,
    # by id), then t5, then t6
    order = ranked(trials_table().sample(frac=1, random_state=0), "min")["trial_id"].tolist()
    assert order == ["t1", "t2", "t4", "t3", "t5", "t6"]
    assert ranked(trials_table(), "max")["trial_id"].tolist() == ["t3", "t4", "t1", "t2", "t5", "t6"]


def test_the_report_says_at_which_epoch_each_value_was_taken():
    meta = {"family": "hdr_patch", "space": "caps", "objective": {"metric": "val/a", "mode": "min"}}
    text = report(ranked(trials_table(), "min"), meta, {})
    header, *rows = text.splitlines()[1:8]
    assert "at_epoch" in header.split() and rows[4].split()[:4] == ["t5", "EARLY_STOPPED", "2", "0.5"]


def test_best_checkpoint_is_the_best_scored_epoch_that_wrote_one():
    # epoch 2 scores best but wrote no checkpoint (checkpoint_every 3); epoch 4 carried epoch 3's
    # validation (NaN score); of epochs 1 and 3, which did both, epoch 3's 0.7 is the best
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "checkpoint_score": [0.9, 0.5, 0.7, float("nan")],
                            "checkpoint_path": ["/c1", None, "/c3", "/c4"]})
    assert best_checkpoint_path(history, "min") == "/c3"
    assert best_checkpoint_path(history, "max") == "/c1"
    assert best_checkpoint_path(history.drop(columns="checkpoint_score"), "min") == ""  # an older sweep


def test_report_names_the_best_trials_best_checkpoint():
    trials = trials_table().assign(best_checkpoint=["/t1/checkpoint_a", "", "", "", "", ""])
    meta = {"family": "hdr_patch", "space": "caps", "objective": {"metric": "val/a", "mode": "min"}}
    assert "best trial's best checkpoint: /t1/checkpoint_a" in report(trials, meta, {})


def test_report_compares_the_best_with_the_default_only_when_the_default_finished():
    meta = {"family": "hdr_patch", "space": "caps", "objective": {"metric": "val/a", "mode": "min"}}
    ranked = trials_table().iloc[[1, 0, 2, 3, 4, 5]].reset_index(drop=True)  # t2 (3.0) first, t1 default
    # t2 3.0 against the default's 3.0: 0.0%; t3 at 4.0 made best would be +33.3%
    assert "documented default: 3 (COMPLETED); change +0.0%" in report(ranked, meta, {})
    errored = ranked.assign(status=["COMPLETED", "ERROR", "COMPLETED", "COMPLETED", "EARLY_STOPPED", "STOPPED"],
                            error=["", "ActorUnavailableError: the node died", "", "", "", ""])
    text = report(errored, meta, {})
    assert "the documented default did not finish (ERROR: ActorUnavailableError: the node died)" in text
    assert "change +" not in text and "change -" not in text


def test_history_gets_the_epochs_only_the_runs_checkpoint_kept():
    from losstune.ray_jobs.results import complete_history

    # Tune lost epoch 1 when it restarted the trial (it resumed from the epoch-1 checkpoint) and
    # has epoch 3 twice (run before the driver died, and again after the restart)
    tune = pd.DataFrame({"epoch": [2, 3, 3, 4], "val/a": [0.8, 0.7, 0.65, 0.6]})
    stored = pd.DataFrame({"epoch": [1, 2], "val/a": [0.9, 0.81]})
    history = complete_history(tune, stored)
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert history["val/a"].tolist() == [0.9, 0.8, 0.65, 0.6]  # Tune's rows win; of two, the later
    assert complete_history(pd.DataFrame(), stored)["epoch"].tolist() == [1, 2]


def test_best_checkpoint_is_the_best_scored_of_those_ray_keeps():
    from losstune.ray_jobs.results import kept_best_checkpoint

    snapshot = {"checkpoint_results": [
        {"checkpoint_dir_name": "checkpoint_a", "metrics": {"checkpoint_score": 0.5}},
        {"checkpoint_dir_name": "checkpoint_b", "metrics": {"checkpoint_score": 0.3}},
        {"checkpoint_dir_name": "checkpoint_c", "metrics": {"checkpoint_score": float("nan")}}]}
    assert kept_best_checkpoint("/s", "t1", snapshot, "min") == "/s/trainer_runs/t1/checkpoint_b"
    assert kept_best_checkpoint("/s", "t1", snapshot, "max") == "/s/trainer_runs/t1/checkpoint_a"
    assert kept_best_checkpoint("/s", "t1", {}, "min") == ""


def drawn_figures(monkeypatch) -> list:
    """The matplotlib figures results.plots draws, kept instead of turned into PNG bytes."""
    import losstune.ray_jobs.results as results

    figures = []
    monkeypatch.setattr(results, "png", lambda figure, rect=None: figures.append(figure) or b"")
    return figures


def hdr_history(trials: pd.DataFrame) -> pd.DataFrame:
    rows = [{"trial_id": t, "epoch": e, "val/log_l1": 1.0 + 0.1 * e, "val/overflow_frac": 0.01}
            for t, n in zip(trials["trial_id"], trials["epochs_done"]) for e in range(1, n + 1)]
    return pd.DataFrame(rows)


def test_the_plots_show_the_default_alike_everywhere_and_stopped_trials_apart(monkeypatch):
    import matplotlib.colors

    from losstune.ray_jobs.results import plots

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
    from losstune.ray_jobs.results import pareto_plot

    figures = drawn_figures(monkeypatch)
    trials = trials_table().assign(pareto=lambda t: pareto_front(t, OBJECTIVES))
    pareto_plot(trials[trials["trial_id"].isin(["t1", "t2"])], OBJECTIVES)  # both on the front
    labels = [text.get_text() for text in figures[0].axes[0].get_legend().get_texts()]
    assert labels == ["Pareto front", "documented default"]
