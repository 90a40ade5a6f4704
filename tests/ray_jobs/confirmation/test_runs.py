"""Which configs a confirmation reruns, at which seeds, and what it concludes from their runs."""

import json

import pandas as pd
import pytest

from losstune.ray_jobs.core import cluster
from losstune.ray_jobs import confirm
from losstune.ray_jobs.confirmation import runs as confirmation
from losstune.ray_jobs.confirmation import verdicts
from losstune.ray_jobs.core.usage import UsageError
from losstune.ray_jobs.results.tables import META_FILE

META = {"family": "hdr_patch", "space": "caps", "objective": {"metric": "val/log_l1", "mode": "min"},
        "objectives": [], "default_point": {"caps/abs_max": 16.0}, "epochs": 4, "trials": 5,
        "base": {"train": {"seed": 7}}, "preset": "", "search": "optuna", "scheduler": "asha", "seed": 0,
        "grace_epochs": 1, "startup_trials": 2, "smoke_test": True, "storage": "/x", "name": "s",
        "resources": {"workers": 1, "cpus_per_worker": 0.9, "gpus_per_worker": 0.0, "driver_cpus": 0.1}}


def ranked_trials():
    """A sweep's trials table as results.tables ranks it: t2 best, the default t1 among them."""
    return pd.DataFrame({
        "trial_id": ["t2", "t3", "t1", "t4", "t5"],
        "status": ["COMPLETED", "COMPLETED", "COMPLETED", "EARLY_STOPPED", "STOPPED"],
        "is_default": [False, False, True, False, False],
        "objective": [0.5, 0.6, 0.9, 0.4, 0.1],
        "config/caps/abs_max": [8.0, 6.0, 16.0, 4.0, 2.0],
    })


def test_candidates_are_the_default_and_the_best_completed_trials():
    chosen = confirmation.candidates(ranked_trials(), META, 2)
    assert [(c.config_id, c.trial_id, c.sweep_value) for c in chosen] == [
        ("default", "t1", 0.9), ("top1", "t2", 0.5), ("top2", "t3", 0.6)]
    assert chosen[1].point == {"caps/abs_max": 8.0}


def test_more_than_the_healthy_trials_is_refused_naming_top():
    # t4 was stopped by ASHA and t5 unhealthy: two healthy trials besides the default
    with pytest.raises(UsageError, match="--top: the sweep has 2 healthy finished trial"):
        confirmation.candidates(ranked_trials(), META, 3)


def test_the_seeds_are_new_ones():
    assert confirmation.seeds_for(META, 3) == [8, 9, 10]  # the sweep trained at train.seed 7


def runs_table(rows):
    return pd.DataFrame(rows, columns=["config_id", "sweep_trial", "seed", "status", "stop_reason", "objective"])


def test_summary_pairs_by_seed_and_counts_a_failed_seed_against_its_config():
    chosen = confirmation.candidates(ranked_trials(), META, 2)
    table = runs_table([
        ("default", "t1", 8, "COMPLETED", "", 1.0), ("default", "t1", 9, "COMPLETED", "", 1.0),
        ("default", "t1", 10, "COMPLETED", "", 1.0),
        ("top1", "t2", 8, "COMPLETED", "", 0.7), ("top1", "t2", 9, "COMPLETED", "", 0.9),
        ("top1", "t2", 10, "COMPLETED", "", 0.8),
        ("top2", "t3", 8, "COMPLETED", "", 0.5), ("top2", "t3", 9, "STOPPED", "overflow", float("nan")),
        ("top2", "t3", 10, "COMPLETED", "", 0.5)])
    summary = verdicts.summary(table, chosen, "min").set_index("config_id")
    # top1: differences -0.3, -0.1, -0.2: better at 3 of 3, but its paired t interval
    # [-0.448, +0.048] holds 0 (test_confirm_stats works it out): inconclusive, not "beats"
    assert summary.loc["top1", "diff"] == pytest.approx(-0.2) and summary.loc["top1", "better"] == 3
    assert summary.loc["top1", "verdict"] == "inconclusive" and summary.loc["top1", "p_value"] == pytest.approx(0.25)
    assert summary.loc["top1", "corrected_over"] == 2 and summary.loc["top1", "setting"] == "caps/abs_max=8"
    # top2 is better at both seeds where it finished, but failed health at seed 9: not confirmed
    assert summary.loc["top2", "failed"] == 1 and summary.loc["top2", "pairs"] == 2
    assert summary.loc["top2", "verdict"] == "not confirmed"
    assert summary.loc["top2", "conclusion"] == "failed at 1 of 3 seeds (overflow): not confirmed"
    text = verdicts.report(summary.reset_index(), confirm.sweep_plan("/x/s", META, confirm.parse_args(["/x/s"])),
                               [8, 9, 10])
    assert "training seeds 8, 9, 10" in text and "over 2 of 3 seeds" in text
    answer = text.splitlines()[-2:]  # the answer comes last, a sentence per config
    assert answer[0].startswith("  top1 (caps/abs_max=8): val/log_l1 0.8 vs the default's 1, -0.2 (-20.0%), "
                                "95% CI [-0.448, +0.0484], better at 3 of 3 seeds, p = 0.25: inconclusive at 3 seeds")
    assert answer[1] == "  top2 (caps/abs_max=6): failed at 1 of 3 seeds (overflow): not confirmed"
    assert "Holm-corrected over the 2 configs" in text and "beats" not in text


def test_a_confirmation_at_fewer_seeds_is_extended_not_rerun(tmp_path):
    chosen = confirmation.candidates(ranked_trials(), META, 1)
    earlier = runs_table([("default", "t1", 8, "COMPLETED", "", 1.0), ("default", "t1", 9, "COMPLETED", "", 1.0),
                          ("top1", "t2", 8, "COMPLETED", "", 0.7), ("top1", "t2", 9, "COMPLETED", "", 0.9)])
    (tmp_path / "confirm_top1_seeds2").mkdir()
    earlier.to_parquet(tmp_path / "confirm_top1_seeds2" / confirmation.CONFIRM_FILE)
    name_for = lambda n: f"confirm_top1_seeds{n}"  # noqa: E731
    name, table = confirmation.earlier_confirmation(str(tmp_path), chosen, [8, 9, 10, 11, 12], name_for)
    assert name == "confirm_top1_seeds2" and set(table["seed"]) == {8, 9}
    assert confirmation.earlier_confirmation(str(tmp_path), chosen, [8, 9], name_for) is None  # none has fewer
    other = confirmation.candidates(ranked_trials(), META, 2)  # top2 was never confirmed there
    with pytest.raises(UsageError, match="confirmed other configs"):
        confirmation.earlier_confirmation(str(tmp_path), other, [8, 9, 10], name_for)


@pytest.fixture
def finished_sweep(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / META_FILE).write_text(json.dumps(META))
    ranked_trials().to_parquet(folder / "trials.parquet")
    return folder


@pytest.fixture
def no_ray(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a refused confirmation reached Ray's start")

    monkeypatch.setattr(cluster, "start_ray", refuse)
    monkeypatch.setattr(cluster, "start_local_ray", refuse)


@pytest.mark.parametrize("argv, expected", [
    (["--seeds", "1"], "--seeds: must be >= 2, got 1"),
    (["--top", "3"], "--top: the sweep has 2 healthy finished trial(s) besides the default, fewer than --top 3"),
    (["--top", "0"], "--top: must be >= 1, got 0"),
    (["--seeds", "auto", "--max-seeds", "2"], "--max-seeds: must be >= 3, got 2"),
])
def test_bad_flags_are_one_line_before_ray_starts(capsys, no_ray, finished_sweep, argv, expected):
    assert confirm.main([str(finished_sweep), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"confirm: error: {expected}"
    assert not any(p.name.startswith("confirm_") for p in finished_sweep.iterdir())


def test_seeds_that_are_neither_a_number_nor_auto_are_refused(capsys, no_ray, finished_sweep):
    with pytest.raises(SystemExit) as exit_:
        confirm.main([str(finished_sweep), "--seeds", "many"])
    assert exit_.value.code == 2 and "expected a number of seeds or auto, got 'many'" in capsys.readouterr().err


def test_a_percentage_of_a_default_about_0_is_refused_before_ray_starts(capsys, no_ray, finished_sweep):
    trials = ranked_trials()
    trials.loc[trials["is_default"], "objective"] = 0.0  # e.g. a signed bias metric centred on 0
    trials.to_parquet(finished_sweep / "trials.parquet")
    assert confirm.main([str(finished_sweep), "--top", "1", "--min-effect", "1%"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("confirm: error: --min-effect 1%: the default's mean is 0, about 0") and len(err.splitlines()) == 1
    assert "give an absolute --min-effect" in err and not any(p.name.startswith("confirm_") for p in finished_sweep.iterdir())


def test_a_folder_that_is_not_a_finished_sweep_is_refused(capsys, no_ray, tmp_path, finished_sweep):
    assert confirm.main([str(tmp_path)]) == 2
    assert f"SWEEP: {tmp_path}: not a losstune sweep (no {META_FILE})" in capsys.readouterr().err
    (finished_sweep / "trials.parquet").unlink()
    assert confirm.main([str(finished_sweep)]) == 2
    assert "has no trials.parquet yet" in capsys.readouterr().err


def test_a_pbt_sweep_is_not_confirmed_by_rerunning_final_configs(capsys, no_ray, finished_sweep):
    (finished_sweep / META_FILE).write_text(json.dumps({**META, "scheduler": "pbt"}))
    assert confirm.main([str(finished_sweep)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("confirm: error: SWEEP: ") and "is a pbt sweep: its trials followed schedules" in err
    assert len(err.splitlines()) == 1


def test_an_existing_confirmation_is_continued_only_with_resume(capsys, no_ray, finished_sweep):
    (finished_sweep / "confirm_top1_seeds2").mkdir()
    assert confirm.main([str(finished_sweep), "--top", "1", "--seeds", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("confirm: error: --resume: ") and "exists; pass --resume to continue it" in err


def test_a_multi_objective_confirmation_compares_every_objective_paired_by_seed():
    # lgt-like: ranked by val/a, a point of the front may trade val/b for it. top1 is better in a at
    # every seed (diffs -0.3, -0.25, -0.2, -0.15, -0.1: mean -0.2, paired t interval
    # [-0.298, -0.102], test_confirm_stats) and worse in b at every seed (diffs +0.2 ... +0.4: mean
    # +0.3, the same spread: [+0.202, +0.398]); both beyond the minimum effect 0.01 (1% of 1.0)
    chosen = confirmation.candidates(ranked_trials(), META, 1)
    seeds = (8, 9, 10, 11, 12)
    table = runs_table([("default", "t1", s, "COMPLETED", "", 1.0) for s in seeds]
                       + [("top1", "t2", s, "COMPLETED", "", v) for s, v in zip(seeds, (0.7, 0.75, 0.8, 0.85, 0.9))])
    table["final/val/b"] = [1.0] * 5 + [1.2, 1.25, 1.3, 1.35, 1.4]
    others = [{"metric": "val/b", "mode": "min"}]
    summary = verdicts.summary(table, chosen, "min", others).set_index("config_id")
    assert summary.loc["top1", "verdict"] == "beats"
    assert summary.loc["top1", "diff/val/b"] == pytest.approx(0.3)
    assert (summary.loc["top1", "diff_low/val/b"], summary.loc["top1", "diff_high/val/b"]) == pytest.approx(
        (0.201837, 0.398163), abs=1e-6)
    assert summary.loc["top1", "verdict/val/b"] == "worse than the default by more than the minimum effect 0.01"
    plan = confirm.sweep_plan("/x/s", META | {"objectives": [META["objective"], *others]}, confirm.parse_args(["/x/s"]))
    text = verdicts.report(summary.reset_index(), plan, list(seeds))
    assert "val/b vs default +0.3 [+0.2018, +0.3982]: worse than the default by more than the minimum effect" in text


@pytest.mark.parametrize("damage, expected", [
    (b"", "not a trials table (Could not open Parquet input source"),
    (b"garbage", "not a trials table (Could not open Parquet input source"),
    ("no objective", "lacks the column(s) objective"),
])
def test_a_damaged_trials_table_is_named_in_one_line(capsys, no_ray, finished_sweep, damage, expected):
    # was an ArrowInvalid traceback, or KeyError: 'objective'
    path = finished_sweep / "trials.parquet"
    if isinstance(damage, bytes):
        path.write_bytes(damage)
    else:
        ranked_trials().drop(columns=["objective"]).to_parquet(path)
    assert confirm.main([str(finished_sweep), "--top", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"confirm: error: SWEEP: {path}: {expected}") and len(err.splitlines()) == 1
    assert err.endswith(f"losstune-analyze {finished_sweep} rewrites it")
    assert not any(p.name.startswith("confirm_") for p in finished_sweep.iterdir())
