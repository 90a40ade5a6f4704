"""The printed summary, on the ranked trials table of test_results."""

from losstune.ray_jobs.report import report
from losstune.ray_jobs.results import pareto_front, ranked

from tests.ray_jobs.test_results import OBJECTIVES, trials_table


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
