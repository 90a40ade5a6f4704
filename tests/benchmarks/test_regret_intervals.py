"""benchmarks/regret_intervals.py: the coverage it reports, on values whose answer is known, and its
refusal of a drawn set larger than the population."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

from regret_intervals import coverage, coverage_lines, main  # noqa: E402

from losstune.ray_jobs.confirmation.stats import t_interval  # noqa: E402


def test_coverage_counts_the_draws_whose_interval_holds_the_truth():
    rng = np.random.default_rng(0)
    # equal values: every interval is [0, 0], which holds 0 (share 1, standard error 0) and never 1
    assert coverage(np.zeros(5), 3, 50, t_interval, 0.0, rng) == (1.0, 0.0)
    assert coverage(np.zeros(5), 3, 50, t_interval, 1.0, rng) == (0.0, 0.0)
    # values 0 and 1 alike, sets of 3: the set is all 0s or all 1s (each 1/8) with a zero-width
    # interval that misses 0.5, else its t interval (mean 1/3 or 2/3, sd 0.577, half-width
    # 4.303 * 0.577 / sqrt(3) = 1.43) holds it: 3/4 of draws in expectation
    share, se = coverage(np.array([0.0, 1.0]), 3, 4000, t_interval, 0.5, rng)
    assert abs(share - 0.75) < 4 * se


def test_lines_name_the_pair_its_population_and_each_share():
    seeds = range(30)
    table = {m: {share: {s: (s % 7) / 7 + (0.1 if m == "random" else 0.0) for s in seeds}
                 for share in (1 / 8, 1 / 4, 1 / 2, 1.0)} for m in ("random", "tpe-asha")}
    lines = coverage_lines(table, n=20, draws=200)
    # every difference is -0.1: each t interval is [-0.1, -0.1] and holds the population's mean
    assert len(lines) == 4 and all("mean -0.100" in line and "covers 100.0% +- 0.0%" in line for line in lines)
    assert lines[0].lstrip().startswith("1/8: tpe-asha - random") and "(sd 0.000, 0% exactly 0; N 30)" in lines[0]


def test_a_drawn_set_larger_than_the_population_is_refused(capsys):
    assert main(["--seeds", "5", "--n", "20"]) == 2
    assert "--n" in capsys.readouterr().err
