"""benchmarks/claims.py: every claim's experiment is a valid comparison, and a claim's verdict
follows from made-up runs worked out by hand."""

import os
import sys

import pandas as pd
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

from benchmarks.claim_ledger import CLAIMS, EXPERIMENTS, Claim  # noqa: E402
from claims import counts, judge, table  # noqa: E402

from losstune.ray_jobs import compare  # noqa: E402
from losstune.ray_jobs.cli.compare_configs import build_candidates  # noqa: E402
from losstune.trainables.registry import load_family  # noqa: E402


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_each_experiment_is_a_comparison_that_passes_its_checks(name):
    args = compare.parse_args(EXPERIMENTS[name].command("/nowhere", name, 5)[1:])
    chosen = build_candidates(load_family(args.family), args)
    labels = [c.config_id for c in chosen]
    for claim in CLAIMS:
        if claim.experiment == name:
            assert claim.config in labels[1:], f"{claim.claim}: {claim.config} is not compared in {name}"


def test_every_claim_is_measured_or_says_why_not():
    for claim in CLAIMS:
        assert claim.experiment or claim.needs or claim.elsewhere_verdict, claim.claim


def runs(values: dict) -> pd.DataFrame:
    return pd.DataFrame([{"config_id": name, "seed": seed, "status": "COMPLETED", "final/val/x": value}
                         for name, series in values.items() for seed, value in enumerate(series, 1)])


def test_a_claimed_size_outside_the_interval_refutes_a_real_effect():
    # differences -0.3, -0.25, -0.2, -0.15, -0.1 against a reference of 1.0: paired t interval
    # [-0.298, -0.102] (tests/ray_jobs/confirmation/test_stats.py), i.e. -30% to -10%: it beats the
    # reference; a claimed 5-8% gain lies outside it, a claimed 15-20% inside
    made_up = runs({"ref": [1.0] * 5, "new": [0.7, 0.75, 0.8, 0.85, 0.9]})
    small = Claim("x", "a 5-8% gain", "e", "new", "val/x", "min", (-0.08, -0.05))
    assert judge(small, made_up)["verdict"].startswith("does not hold here (the effect is real")
    right = Claim("x", "a 15-20% gain", "e", "new", "val/x", "min", (-0.20, -0.15))
    assert judge(right, made_up)["verdict"] == "holds here"
    assert "better at 5 of 5" in judge(right, made_up)["result"]


def test_a_no_worse_claim_holds_on_equivalence_and_a_better_claim_does_not():
    tiny = runs({"ref": [1.0] * 5, "new": [1.0 + 1e-9] * 5})  # equivalent within 1% of 1.0
    assert judge(Claim("x", "no worse", "e", "new", "val/x", expects="no worse"), tiny)["verdict"] == "holds here"
    assert judge(Claim("x", "better", "e", "new", "val/x"), tiny)["verdict"] == "does not hold here"


def test_a_claim_whose_runs_were_all_stopped_says_so_instead_of_an_interval():
    stopped = runs({"ref": [1.0] * 5, "new": [0.9] * 5})
    stopped.loc[stopped["config_id"] == "new", ["status", "stop_reason"]] = ["STOPPED_UNHEALTHY", "loss_imbalance"]
    judged = judge(Claim("x", "better", "e", "new", "val/x"), stopped)
    assert judged == {"result": "0 healthy pair(s): new stopped at 5 of 5 seeds (loss_imbalance)",
                      "verdict": "not measurable here: its runs were stopped (loss_imbalance)"}


def test_a_claimed_range_of_a_value():
    # 5, 6, 7: mean 6, sd 1, t(0.975, 2) / sqrt(3) = 2.484: [3.52, 8.48], not inside 4-8 and not outside
    made_up = runs({"ref": [1.0] * 3, "new": [5.0, 6.0, 7.0]})
    assert judge(Claim("x", "settles at 4-8", "e", "new", "val/x", "range", (4.0, 8.0)), made_up)["verdict"] \
        == "inconclusive at 3"


def test_the_table_counts_what_is_not_run_yet(tmp_path):
    frame = table(str(tmp_path), 5)
    assert len(frame) == len(CLAIMS)
    tally = counts(frame)
    assert tally["not run"] == sum(c.experiment is not None for c in CLAIMS)
    assert sum(tally.values()) == len(CLAIMS)
