"""The printed summary, on the ranked trials table of test_results."""

import math

import pandas as pd

from losstune.ray_jobs.reports.report import report
from losstune.ray_jobs.results.ranking import ranked
from losstune.ray_jobs.results.trial_stats import pareto_front

from tests.ray_jobs.results.test_tables import OBJECTIVES, trials_table


def test_report_lists_the_front():
    trials = trials_table().assign(pareto=lambda t: pareto_front(t, OBJECTIVES))
    meta = {"family": "lgt", "space": "weights", "objective": {"metric": "val/e", "mode": "min"},
            "objectives": OBJECTIVES}
    text = report(trials, meta, {})
    assert "Pareto front (2 of 6 trials" in text and "t2" in text.split("Pareto front")[1]


def test_the_report_says_at_which_epoch_each_value_was_taken():
    meta = {"family": "hdr_patch", "space": "caps", "objective": {"metric": "val/a", "mode": "min"}}
    text = report(ranked(trials_table(), "min"), meta, {})
    header, *rows = text.splitlines()[1:8]
    assert "at_epoch" in header.split() and rows[4].split()[:4] == ["t5", "EARLY_STOPPED", "2", "0.5"]


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


def test_the_report_says_where_its_numbers_come_from():
    meta = {"family": "hdr_patch", "space": "caps", "objective": {"metric": "val/a", "mode": "min"},
            "provenance": {"git": {"commit": "0123456789abcdef", "dirty": True}, "python": "3.11.7",
                           "packages": {"torch": "2.13.0"}, "machine": {"cpus": 2, "gpus": []}, "data": "synthetic"}}
    line = [line for line in report(trials_table(), meta, {}).splitlines() if line.startswith("provenance:")]
    assert line == ["provenance: commit 0123456789 (with uncommitted changes); Python 3.11.7, torch 2.13.0; 2 CPUs, "
                    "no GPU; data: synthetic"]


def test_report_says_what_a_warm_start_gave_optuna():
    meta = {"family": "hdr_patch", "space": "caps", "objective": {"metric": "val/a", "mode": "min"},
            "warm_start": {"sweep": "/r/earlier", "used": 5, "unhealthy": 3, "completed": 6}}
    assert ("warm start: 5 of the 6 completed trials of /r/earlier fit this space and were given to Optuna as prior "
            "trials, and 3 trials its health checks stopped, as infeasible") in report(trials_table(), meta, {})
    meta["warm_start"] = {"sweep": "/r/earlier", "used": 5, "completed": 6}  # saved before health stops were given
    assert "prior trials\n" in report(trials_table(), meta, {}) + "\n"


def ranked_curves(status_of_last: str = "COMPLETED"):
    """8 trials over 4 epochs, final values 0-7. Epoch 3 ranks them as the final does, epoch 2 swaps
    each pair (1, 0, 3, 2, ...), epoch 1 reverses them."""
    import pandas as pd

    final = list(range(8))
    by_epoch = {1: [7 - v for v in final], 2: [1, 0, 3, 2, 5, 4, 7, 6], 3: [v + 1 for v in final], 4: final}
    history = pd.DataFrame([{"trial_id": f"t{i}", "epoch": e, "val/a": float(values[i])}
                            for e, values in by_epoch.items() for i in range(8)])
    trials = pd.DataFrame({"trial_id": [f"t{i}" for i in range(8)], "status": ["COMPLETED"] * 7 + [status_of_last]})
    return trials, history


def test_early_ranking_is_spearman_per_epoch_with_fishers_interval():
    from losstune.ray_jobs.results.trial_stats import early_ranking

    trials, history = ranked_curves()
    ranking = early_ranking(trials, history, {"objective": {"metric": "val/a", "mode": "min"}, "epochs": 4})
    assert ranking["epoch"].tolist() == [1, 2, 3] and (ranking["n"] == 8).all()
    assert ranking["rho"].tolist()[0] == -1.0 and ranking["rho"].tolist()[2] == 1.0
    # epoch 2: every rank off by one, sum d^2 = 8: rho = 1 - 6 * 8 / (8 * 63) = 0.90476; z = atanh(rho)
    # = 1.4987, half-width 1.96 * sqrt(1.06 / 5) = 0.90245: tanh(0.5963) = 0.5343, tanh(2.4012) = 0.9836
    epoch2 = ranking.iloc[1]
    assert round(epoch2["rho"], 4) == 0.9048 and round(epoch2["low"], 3) == 0.534 and round(epoch2["high"], 3) == 0.984
    # a trial that did not run every epoch is left out: 7 trials are too few to judge
    trials, history = ranked_curves(status_of_last="EARLY_STOPPED")
    assert early_ranking(trials, history, {"objective": {"metric": "val/a", "mode": "min"}, "epochs": 4}).empty


def test_the_report_says_whether_ashas_first_stop_ranks_trials_as_their_last_epoch_does():
    from losstune.ray_jobs.reports.report import early_epochs_line
    from losstune.ray_jobs.results.trial_stats import early_ranking

    trials, history = ranked_curves()
    meta = {"family": "hdr_patch", "space": "caps", "objective": {"metric": "val/a", "mode": "min"}, "epochs": 4,
            "scheduler": "asha", "grace_epochs": 1}
    ranking = early_ranking(trials, history, meta)
    line = early_epochs_line(ranking, 1)
    assert "at epoch 1 (--grace-epochs, where ASHA first stops trials) the objective ranks the 8 trials" in line
    assert "Spearman -1.00" in line and "from epoch 2 on 0.9 or more" in line and "consider --grace-epochs 2" in line
    assert "consider" not in early_epochs_line(ranking, 3)  # epoch 3 ranks them as the last does
    # in the report: test_results' six trials are too few to judge; a PBT sweep gets no such line
    assert "early epochs: not judged" in report(trials_table(), meta, {}, history=history)
    assert "early epochs" not in report(trials_table(), meta | {"scheduler": "pbt"}, {}, history=history)


def test_early_ranking_keeps_only_the_epochs_every_trial_validated_at():
    from losstune.ray_jobs.results.trial_stats import early_ranking

    trials, history = ranked_curves()
    history.loc[history["epoch"] == 2, "val/a"] = float("nan")  # a family that validates every other epoch
    ranking = early_ranking(trials, history, {"objective": {"metric": "val/a", "mode": "min"}, "epochs": 4})
    assert ranking["epoch"].tolist() == [1, 3] and ranking["rho"].tolist() == [-1.0, 1.0]


def test_report_names_trials_that_ended_at_exactly_the_same_value_and_what_they_differ_in():
    import pandas as pd

    meta = {"family": "hdr_patch", "space": "caps", "objective": {"metric": "val/a", "mode": "min"}}
    # t1 (default) and t2 both 3.0 at epoch 4: a clamp of 3.4 vs 5.2 that never bound; t3-t6 differ
    trials = trials_table().assign(**{"config/caps/clamp_value": [3.4, 5.2, 4.0, 4.0, 4.0, 4.0],
                                      "config/caps/mode": ["A", "A", "A", "B", "B", "A"]})
    text = report(trials, meta, {})
    assert "  2 trials at 3 (epoch 4): t1, t2; they differ in caps/clamp_value" in text.splitlines()
    assert "identical results" not in report(trials.assign(objective=[3.0, 3.01, 4.0, 3.5, 0.5, 0.1]), meta, {})
    # the same value at different epochs is not the same run: t5 stopped at epoch 2
    assert "identical results" not in report(trials.assign(objective=[3.0, 3.01, 4.0, 3.5, 4.0, 0.1]), meta, {})
    many = pd.concat([trials] * 2, ignore_index=True).assign(trial_id=[f"u{i}" for i in range(12)])
    assert "  4 trials at 3 (epoch 4): u0, u1, u6, u7; they differ in caps/clamp_value" in report(many, meta, {})
    more = pd.concat([trials] * 3, ignore_index=True).assign(trial_id=[f"v{i}" for i in range(18)])
    assert "  6 trials at 3 (epoch 4): v0, v1, v6, v7, v12 and 1 more; they differ in caps/clamp_value" in \
        report(more, meta, {})


def test_report_says_how_the_trials_ended_when_none_finished_healthy():
    meta = {"family": "lgt", "space": "weights", "objective": {"metric": "val/e", "mode": "min"}}
    stopped = trials_table().assign(status=["STOPPED"] * 4 + ["ERROR", "STOPPED"],
                                    stop_reason=["identity_mapping"] * 4 + ["", "velocity_collapse"])
    assert ("no healthy finished trial (STOPPED identity_mapping 4, ERROR 1, STOPPED velocity_collapse 1): no best "
            "config written") in report(stopped, meta, {})


def branch_trials(modes: str, statuses: str, objectives: list[float]):
    """A trials table of hdr_patch `caps` (mode per trial: "AAB..."; C completed, E early-stopped)."""
    import pandas as pd

    status = {"C": "COMPLETED", "E": "EARLY_STOPPED"}
    return pd.DataFrame({"trial_id": [f"t{i}" for i in range(len(modes))], "config/caps/mode": list(modes),
                         "status": [status[s] for s in statuses], "objective": objectives})


def test_report_gives_each_branch_its_trials_and_names_one_too_thin_to_compare():
    from losstune.ray_jobs.reports.report import branch_lines

    meta = {"family": "hdr_patch", "space": "caps", "objective": {"metric": "val/a", "mode": "min"}}
    # A: 7 drawn, 6 completed at 1.0, 1.2, 0.9, 1.4, 1.1, 1.3 -> sorted 0.9 1.0 1.1 1.2 1.3 1.4, median
    # (1.1 + 1.2) / 2 = 1.15, best 0.9. B: 2 drawn, one completed at 0.8 (median and best 0.8), one
    # stopped early at 0.5 (not comparable, left out). 1 completed < 3 beside A's 6 >= 2 x 3: named.
    trials = branch_trials("AAAAAAABB", "CCCCCCECE", [1.0, 1.2, 0.9, 1.4, 1.1, 1.3, 0.7, 0.8, 0.5])
    lines = branch_lines(trials, meta)
    assert lines[1:3] == ["  caps/mode=A: 7 drawn, 6 completed, median 1.15, best 0.9",
                          "  caps/mode=B: 2 drawn, 1 completed, median 0.8, best 0.8"]
    assert lines[3].startswith("  caps/mode=B has 1 completed trials against caps/mode=A's 6: this sweep cannot say")
    assert "--search random or --enqueue configs with caps/mode=B" in lines[3] and len(lines) == 4
    # maximising: A's best is 1.4
    assert "median 1.15, best 1.4" in branch_lines(trials, meta | {"objective": {"metric": "val/a", "mode": "max"}})[1]
    # B with 3 completed (0.8, 0.6, 0.7): enough to compare, nothing named
    three = branch_trials("AAAAAABBB", "CCCCCCCCC", [1.0, 1.2, 0.9, 1.4, 1.1, 1.3, 0.8, 0.6, 0.7])
    assert branch_lines(three, meta)[2] == "  caps/mode=B: 3 drawn, 3 completed, median 0.7, best 0.6"
    assert len(branch_lines(three, meta)) == 3
    # a branch never drawn is listed with 0; A's 5 completed < 6 do not yet make B's absence a finding
    only_a = branch_trials("AAAAA", "CCCCC", [1.0, 1.2, 0.9, 1.4, 1.1])
    assert branch_lines(only_a, meta)[2] == "  caps/mode=B: 0 drawn, 0 completed" and len(branch_lines(only_a, meta)) == 3


def test_a_space_without_branches_gets_no_branch_lines():
    from losstune.ray_jobs.reports.report import branch_lines

    meta = {"family": "latent_conditioner", "space": "weights", "objective": {"metric": "val/a", "mode": "min"}}
    trials = branch_trials("AB", "CC", [1.0, 2.0]).rename(columns={"config/caps/mode": "config/loss/w"})
    assert branch_lines(trials, meta) == []


def test_report_names_a_flat_objective_and_a_sweep_whose_trials_are_all_equal():
    # issue 55: npt on a near-zero-scale checkpoint gave val/fidelity_vs_plain 1.0 at every epoch,
    # and every trial equal to 7 digits ("change +0.0%")
    import pandas as pd

    meta = {"family": "npt", "space": "weights", "objective": {"metric": "val/a", "mode": "min"}}
    trials = trials_table()
    history = pd.DataFrame([{"trial_id": t, "epoch": e, "val/a": 1.0 if t in ("t1", "t2") else 5.0 - e}
                            for t in trials["trial_id"] for e in (1, 2, 3)])
    text = report(trials, meta, {}, history=history)
    assert ("flat objective: 2 trial(s) kept val/a unchanged over every epoch (t1 at 1, t2 at 1): training does "
            "not move it") in text
    assert "finished trials ended at" not in text  # t3-t6 differ
    same = trials.assign(objective=[1.0, 1.0 + 1e-8, 1.0 - 1e-8, 1.0, 1.0, 1.0])
    assert "all 6 finished trials ended at 1 in val/a (within 1e-06 of each other): the sweep cannot tell its " \
           "configs apart" in report(same, meta, {})


def test_a_sweep_whose_every_trial_failed_at_start_reports_the_first_error():
    # no trial reported an epoch: an empty history (was KeyError 'trial_id' in early_ranking)
    trials = pd.DataFrame({"trial_id": ["a", "b"], "status": ["ERROR", "ERROR"], "stop_reason": ["error", "error"],
                           "objective": [math.nan, math.nan], "epochs_done": [0, 0], "is_default": [True, False],
                           "error": ["RuntimeError: toy: data.fail is set"] * 2})
    meta = {"family": "hdr_patch", "space": "caps", "objective": {"metric": "val/log_l1", "mode": "min"}, "epochs": 2,
            "scheduler": "asha", "grace_epochs": 1}
    text = report(trials, meta, {}, history=pd.DataFrame())
    assert "every trial failed: RuntimeError: toy: data.fail is set: no best config written" in text


def test_a_default_of_exactly_0_gives_the_change_in_units_not_nan_percent():
    from losstune.ray_jobs.reports.report import against_default

    default = pd.DataFrame({"objective": [0.0], "status": ["COMPLETED"], "stop_reason": [""], "epochs_done": [2]})
    text = against_default({"objective": -0.25}, default)
    assert "change -0.25 (from 0)" in text and "nan" not in text
    default["objective"] = 2.0  # else a percentage: (1.5 - 2) / 2 = -25.0%
    assert "change -25.0%" in against_default({"objective": 1.5}, default)


def test_a_smoke_sweep_says_so_in_its_first_line():
    trials = pd.DataFrame({"trial_id": ["a"], "status": ["COMPLETED"], "stop_reason": [""], "objective": [1.0],
                           "epochs_done": [2], "is_default": [True], "error": [""]})
    meta = {"family": "hdr_patch", "space": "caps", "objective": {"metric": "val/log_l1", "mode": "min"}, "epochs": 2,
            "smoke_test": True}
    assert report(trials, meta, {}).splitlines()[0].startswith("hdr_patch / space 'caps' (smoke test: tiny data")
