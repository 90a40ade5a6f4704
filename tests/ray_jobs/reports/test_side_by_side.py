"""Two sweeps side by side (ray_jobs/reports/side_by_side.py), from folders written without Ray."""

from losstune.ray_jobs.reports import side_by_side
from losstune.ray_jobs.reports.load import load_sweep

from tests.ray_jobs.sweep_folder import write_sweep


def test_two_sweeps_show_their_best_confirmed_result_importance_and_branches_side_by_side(tmp_path):
    write_sweep(tmp_path / "before", trials=8)
    write_sweep(tmp_path / "after", trials=12)
    sweeps = [load_sweep(tmp_path / "before"), load_sweep(tmp_path / "after")]
    frame = side_by_side.table(sweeps)
    assert list(frame.columns) == ["before", "after"]
    assert frame.loc["trials"].tolist() == ["8 of 8, 3 epochs", "12 of 12, 3 epochs"]
    # each sweep's own best against its own default, and its confirmation's verdict with its N
    for sweep, column in zip(sweeps, frame.columns):
        best = sweep.trials.iloc[0]
        assert frame.loc["best trial", column].startswith(f"{best['trial_id']}: {best['objective']:.4g}; ")
        default = sweep.trials.loc[sweep.trials["is_default"], "objective"].item()
        assert frame.loc["documented default", column] == f"{default:.4g}"
        conclusion = sweep.confirmations["confirm_top1_seeds3"].summary.iloc[1]["conclusion"]
        assert frame.loc["confirmed", column] == f"confirm_top1_seeds3: top1: {conclusion}"
    assert "caps/mode=A:" in frame.loc["branches", "before"] and "caps/mode=B:" in frame.loc["branches", "after"]
    printed = side_by_side.text(sweeps)
    assert "best trial:\n  before: " in printed and "\n  after: " in printed and not printed.startswith("note:")
    page = (tmp_path / "side.html")
    side_by_side.write_html(sweeps, str(page))
    assert "<th>before</th><th>after</th>" in page.read_text() and "confirm_top1_seeds3" in page.read_text()


def test_sweeps_of_different_lengths_are_said_to_be_compared_by_their_verdicts(tmp_path):
    import json

    write_sweep(tmp_path / "a", trials=3)
    write_sweep(tmp_path / "b", trials=3)
    meta = json.loads((tmp_path / "b" / "losstune_sweep.json").read_text())
    (tmp_path / "b" / "losstune_sweep.json").write_text(json.dumps(meta | {"epochs": 6}))
    printed = side_by_side.text([load_sweep(tmp_path / "a"), load_sweep(tmp_path / "b")])
    assert printed.startswith("note: the sweeps train for different epochs (3, 6); compare their verdicts")


def test_confirmations_of_other_sizes_share_a_row(tmp_path):
    # confirm_top1_seeds3 in one sweep and confirm_top1_seeds5 in the other were two half-empty rows
    write_sweep(tmp_path / "a", trials=3)
    write_sweep(tmp_path / "b", trials=3)
    (tmp_path / "b" / "confirm_top1_seeds3").rename(tmp_path / "b" / "confirm_top1_seeds5")
    frame = side_by_side.table([load_sweep(tmp_path / "a"), load_sweep(tmp_path / "b")])
    assert frame.loc["confirmed", "b"].startswith("confirm_top1_seeds5: top1: ")
    assert frame.loc["confirmed", "a"].startswith("confirm_top1_seeds3: top1: ")
