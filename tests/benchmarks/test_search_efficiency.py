"""The stopper that counts TPE + ASHA's compute to reach random search's best."""

import json
import os
import sys

import pandas as pd
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

import search_efficiency  # noqa: E402
from search_efficiency import (best_in_first, best_value, earlier_random_search, make_stopper,  # noqa: E402
                               rung_agreement, seed_agreement)
from losstune.trainables.families import load_family  # noqa: E402


def test_counts_epochs_up_to_the_first_healthy_hit():
    stopper = make_stopper("val/log_l1", "min", target=1.0, budget=10)
    # epochs in arrival order: 1.5, 1.2, then 0.9 from a trial that stopped unhealthy (no valid
    # sample), then exactly the target 1.0 -> reached at the 4th epoch counted
    for value, reason in [(1.5, ""), (1.2, ""), (0.9, "nonfinite_loss"), (1.0, "")]:
        assert stopper("t", {"val/log_l1": value, "stop_reason": reason}) is False
    assert stopper.epochs_to_target == 4
    assert stopper.stop_all()


def test_counts_epochs_to_come_within_near_of_the_target():
    # minimised, target 2.0, near 0.1% -> within means <= 2.002. Epochs: 2.1 (no), 2.0015 (near, 2nd),
    # 2.0001 (near, not the target), 1.9999 (the target, 4th)
    stopper = make_stopper("val/log_l1", "min", target=2.0, budget=10, near=0.001)
    for value in (2.1, 2.0015, 2.0001, 1.9999):
        stopper("t", {"val/log_l1": value})
    assert (stopper.epochs_to_near, stopper.epochs_to_target) == (2, 4)
    # maximised, target 0.5: within 0.1% means >= 0.4995; 0.4994 is not, 0.4996 is (2nd epoch)
    stopper = make_stopper("val/acc", "max", target=0.5, budget=10, near=0.001)
    for value in (0.4994, 0.4996):
        stopper("t", {"val/acc": value})
    assert (stopper.epochs_to_near, stopper.epochs_to_target) == (2, None)
    assert not stopper.stop_all()


def test_stops_at_the_budget_without_a_hit():
    stopper = make_stopper("val/acc", "max", target=0.9, budget=3)
    for value in (0.5, 0.6):
        stopper("t", {"val/acc": value})
    assert not stopper.stop_all()
    stopper("t", {"val/acc": 0.7})
    assert stopper.stop_all() and stopper.epochs_to_target is None


def test_rung_agreement_is_the_rank_correlation_of_early_and_final_values():
    # three trials; at epoch 1 ranked a < b < c, at epoch 2 c < b < a: curves cross, Spearman -1;
    # epoch 2 against itself: 1
    history = pd.DataFrame({"trial_id": list("abcabc"), "epoch": [1, 1, 1, 2, 2, 2],
                            "val/x": [0.1, 0.2, 0.3, 0.9, 0.5, 0.4]})
    assert rung_agreement(history, "val/x", 1, 2) == -1.0
    assert rung_agreement(history, "val/x", 2, 2) == 1.0


def test_best_value_leaves_out_trials_that_stopped_unhealthy():
    table = pd.DataFrame({"trial_id": ["a", "b"], "stop_reason": ["", "overflow"]})
    history = pd.DataFrame({"trial_id": ["a", "a", "b"], "val/log_l1": [0.9, 0.8, 0.1]})
    # b's 0.1 came from a trial stopped as overflowing: the best healthy value is a's 0.8
    assert best_value(table, history, "val/log_l1", "min") == 0.8
    assert best_value(table, history, "val/log_l1", "max") == 0.9


def test_earlier_random_search_is_read_from_its_trials_result_files(tmp_path):
    # trial ids are hex; "02865361" is all digits, and its folder's index (2) follows the id
    lines = {"a": [(1, 0.9, ""), (2, 0.8, "")], "02865361": [(1, 0.7, ""), (2, 0.1, "overflow")]}
    for index, (trial, epochs) in enumerate(lines.items(), start=1):
        folder = tmp_path / "random-3" / f"run_trial_{trial}_{index}_lr=0.001_2026-11-23_18-36-29"
        folder.mkdir(parents=True)
        folder.joinpath("result.json").write_text("".join(
            json.dumps({"trial_id": trial, "epoch": e, "val/log_l1": v, "stop_reason": r}) + "\n" for e, v, r in epochs))
    table, history = earlier_random_search(str(tmp_path), 3)
    assert dict(zip(table["trial_id"], table["trial_index"])) == {"a": 1, "02865361": 2}
    assert len(history) == 4  # epochs reported
    # 02865361 ended unhealthy, so its 0.7 and 0.1 are no valid samples: best a's 0.8
    assert best_value(table, history, "val/log_l1", "min") == 0.8


def test_best_in_first_runs_random_search_trials_one_after_another():
    # launched in the order b (index 1), a (2), c (3); 2 epochs each. Rows arrive interleaved.
    table = pd.DataFrame({"trial_id": ["a", "b", "c"], "trial_index": [2, 1, 3], "stop_reason": ["", "", ""]})
    history = pd.DataFrame({"trial_id": list("abcabc"), "epoch": [1, 1, 1, 2, 2, 2],
                            "val/x": [0.5, 0.9, 0.1, 0.4, 0.8, 0.2]})
    # one after another: b1 0.9, b2 0.8, a1 0.5, a2 0.4, c1 0.1, c2 0.2
    assert best_in_first(table, history, "val/x", "min", 3) == 0.5  # b1, b2, a1
    assert best_in_first(table, history, "val/x", "min", 4) == 0.4
    assert best_in_first(table, history, "val/x", "min", 6) == 0.1
    assert best_in_first(table, history, "val/x", "max", 2) == 0.9


def test_expected_best_of_averages_the_best_over_every_draw_of_k_trials():
    # 2 of [3, 1, 2] (min): the draws {1, 2} -> 1, {1, 3} -> 1, {2, 3} -> 2; mean 4/3
    assert search_efficiency.expected_best_of([3.0, 1.0, 2.0], 2, "min") == pytest.approx(4 / 3)
    # max: {1, 2} -> 2, {1, 3} -> 3, {2, 3} -> 3; mean 8/3
    assert search_efficiency.expected_best_of([3.0, 1.0, 2.0], 2, "max") == pytest.approx(8 / 3)
    # 1 of them: the mean, 2; all of them: the best, 1
    assert search_efficiency.expected_best_of([3.0, 1.0, 2.0], 1, "min") == pytest.approx(2.0)
    assert search_efficiency.expected_best_of([3.0, 1.0, 2.0], 3, "min") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="k: 4"):
        search_efficiency.expected_best_of([3.0, 1.0, 2.0], 4, "min")


def test_trial_bests_leaves_out_unhealthy_trials():
    table = pd.DataFrame({"trial_id": ["a", "b", "c"], "stop_reason": ["", "overflow", ""]})
    history = pd.DataFrame({"trial_id": list("abcabc"), "val/x": [0.5, 0.05, 0.1, 0.4, 0.9, 0.2]})
    # a: min(0.5, 0.4) = 0.4; b stopped unhealthy (its 0.05 does not count); c: min(0.1, 0.2) = 0.1
    assert sorted(search_efficiency.trial_bests(table, history, "val/x", "min")) == [0.1, 0.4]
    assert sorted(search_efficiency.trial_bests(table, history, "val/x", "max")) == [0.2, 0.5]


def test_stopper_keeps_the_best_value_within_a_third_of_the_budget():
    stopper = make_stopper("val/log_l1", "min", target=0.1, budget=9)  # a third: the first 3 epochs
    # epochs: 0.9, 0.5 from an unhealthy trial (left out), 0.7, then 0.3 on the 4th: past the third
    for value, reason in [(0.9, ""), (0.5, "overflow"), (0.7, ""), (0.3, "")]:
        stopper("t", {"val/log_l1": value, "stop_reason": reason})
    assert stopper.best_in_share == 0.7
    assert search_efficiency.ahead_in_share({"tpe_in_share": 0.7, "random_in_share": 0.8}, "min")
    assert not search_efficiency.ahead_in_share({"tpe_in_share": 0.7, "random_in_share": 0.7}, "min")
    assert search_efficiency.ahead_in_share({"tpe_in_share": 0.7, "random_in_share": 0.6}, "max")
    row = {"tpe_in_share": 0.7, "random_in_share": 0.6, "random_expected": 0.75}
    assert search_efficiency.ahead_in_share(row, "min", "random_expected")
    assert not search_efficiency.ahead_in_share(row, "min")


def test_seed_agreement_matches_configs_by_launch_order():
    # configs p, q, r (launch order 0, 1, 2) at two training seeds; `b` lists them in another order.
    # Seed a: p 1.0, q 2.0, r 3.0; seed b: p 2.5, q 2.0, r 3.0 -> ranks (1,2,3) vs (2,1,3):
    # Spearman = 1 - 6*(1+1+0)/(3*(9-1)) = 0.5; a's best (p) ranks 2nd in b; spread = median 2.0 -
    # best 1.0 = 1.0; distances from each seed's median (2.0, 2.5): a -1, 0, 1; b 0, -0.5, 0.5;
    # changes 1, 0.5, 0.5 -> median 0.5
    a = pd.DataFrame({"trial_index": [0, 1, 2], "config/lr": [0.1, 0.2, 0.3], "config/train/seed": [0, 0, 0],
                      "best_objective": [1.0, 2.0, 3.0]})
    b = pd.DataFrame({"trial_index": [2, 0, 1], "config/lr": [0.3, 0.1, 0.2], "config/train/seed": [1, 1, 1],
                      "best_objective": [3.0, 2.5, 2.0]})
    assert seed_agreement(a, b) == {"configs": 3, "spearman": 0.5, "a_best_rank_in_b": 2, "spread": 1.0,
                                    "seed_change": 0.5}
    # maximised: the same values negated give the same figures
    assert seed_agreement(a.assign(best_objective=-a["best_objective"]),
                          b.assign(best_objective=-b["best_objective"]), mode="max")["spearman"] == 0.5
    # different configs at the same launch position: refused, not compared
    with pytest.raises(ValueError, match="config/lr"):
        seed_agreement(a, b.assign(**{"config/lr": [0.3, 0.1, 0.9]}))


def refusal(monkeypatch, capsys, *flags) -> str:
    """main()'s one-line error for `flags`, after checking it exits 2 before Ray starts."""
    monkeypatch.setattr(sys, "argv", ["search_efficiency.py", *flags])
    monkeypatch.setattr(search_efficiency, "start_local_ray", lambda: pytest.fail("Ray started"))
    with pytest.raises(SystemExit) as exit_info:
        search_efficiency.main()
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_a_near_outside_0_1_is_refused_before_ray_starts(monkeypatch, capsys):
    assert refusal(monkeypatch, capsys, "--near", "5") == \
        "search_efficiency.py: error: --near: 5.0 is not a fraction in [0, 1)"


def test_a_space_the_family_lacks_is_refused_before_ray_starts(monkeypatch, capsys):
    assert refusal(monkeypatch, capsys, "--family", "latent_conditioner", "--space", "caps") == \
        "search_efficiency.py: error: --space: latent_conditioner has no space 'caps' (it has " \
        + ", ".join(sorted(load_family("latent_conditioner").spaces)) + ")"
