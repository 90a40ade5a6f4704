"""The confirmation's statistics on numbers small enough to work out by hand."""

import math

import pytest

from losstune.ray_jobs.confirm_stats import compare, rank_agreement, spread


def test_a_config_better_at_every_seed_beats_the_default():
    # paired differences -0.3, -0.1, -0.2: mean -0.2. Of the 27 equally likely resamples, one gives
    # the mean -0.3 and one -0.1 (3.7% each, more than the 2.5% in each tail), so the 95%
    # percentile interval is [-0.3, -0.1]; every resampled mean is below 0: P(better) = 1
    result = compare([0.7, 0.9, 0.8], [1.0, 1.0, 1.0], "min")
    assert result.pairs == 3 and result.diff == pytest.approx(-0.2)
    assert (result.ci_low, result.ci_high) == (pytest.approx(-0.3), pytest.approx(-0.1))
    assert result.p_better == 1.0 and result.verdict == "beats the documented default at 95%"


def test_a_config_better_at_two_of_three_seeds_is_not_distinguishable():
    # differences -0.3, +0.1, -0.1: the interval [-0.3, +0.1] holds 0. Resampled sums below 0, by
    # the counts (n-0.3, n+0.1, n-0.1) of the 27 ordered draws: (3,0,0) 1, (0,0,3) 1, (2,1,0) 3,
    # (2,0,1) 3, (1,2,0) 3, (1,0,2) 3, (0,1,2) 3, (1,1,1) 6 = 23, so P(better) = 23/27 = 0.852
    result = compare([0.7, 1.1, 0.9], [1.0, 1.0, 1.0], "min")
    assert (result.ci_low, result.ci_high) == (pytest.approx(-0.3), pytest.approx(0.1))
    assert result.p_better == pytest.approx(23 / 27, abs=0.02)
    assert result.verdict == "not distinguishable with 3 seeds"


def test_higher_is_better_where_the_objective_is_maximised():
    worse = compare([0.7, 0.9, 0.8], [1.0, 1.0, 1.0], "max")  # the first test's numbers, maximised
    assert worse.p_better == 0.0 and worse.verdict == "worse than the documented default at 95%"
    assert compare([1.3, 1.1, 1.2], [1.0, 1.0, 1.0], "max").verdict == "beats the documented default at 95%"


def test_one_pair_says_nothing():
    result = compare([0.5], [1.0], "min")
    assert math.isnan(result.ci_low) and result.verdict == "not distinguishable with 1 paired seed(s)"


def test_spread_of_1_2_3():
    # mean 2, sd sqrt(((1-2)^2 + 0 + (3-2)^2) / 2) = 1; resampled means span [1, 3], each end 1/27
    s = spread([1.0, 2.0, 3.0])
    assert (s.n, s.mean, s.sd) == (3, 2.0, 1.0) and (s.ci_low, s.ci_high) == (1.0, 3.0)
    assert spread([2.0, 2.0]).ci_low == 2.0  # identical values: a zero-width interval, not an error


def test_rank_agreement():
    assert rank_agreement([1.0, 2.0, 3.0], [0.1, 0.2, 0.3]) == pytest.approx(1.0)
    assert rank_agreement([1.0, 2.0, 3.0], [0.3, 0.2, 0.1]) == pytest.approx(-1.0)
    assert math.isnan(rank_agreement([1.0, 2.0], [1.0, 2.0]))  # two configs rank nothing
