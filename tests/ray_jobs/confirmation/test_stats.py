"""The confirmation's statistics: small cases worked out by hand, and by simulation that the
intervals and the seeds estimate mean what they say at 3-10 seeds."""

import math

import numpy as np
import pytest
from scipy import stats

from benchmarks.verdicts import decided_at_estimate, relative_margin, skewed_at_margin
from losstune.ray_jobs.confirmation.small_samples import least_p, normal_skewness_range, sign_flip_p
from losstune.ray_jobs.confirmation.stats import (Comparison, compare, holm, judge, parse_min_effect, rank_agreement,
                                                  seeds_needed, spread, t_interval)
from losstune.ray_jobs.confirmation.verdicts import verdict_phrase


def judged(config, default, mode="min", min_effect="1%"):
    return judge([compare(config, default, mode, min_effect)])[0]


def test_three_seeds_better_at_every_seed_are_inconclusive():
    # differences -0.3, -0.1, -0.2: mean -0.2, sd sqrt((0.01 + 0.01 + 0) / 2) = 0.1, standard error
    # 0.1 / sqrt(3) = 0.057735; t(0.975, 2 df) = 4.302653, half-width 0.248414: [-0.448414, +0.048414],
    # which holds 0. Sign flips: of the 8 patterns only all-minus and all-plus reach |mean| 0.2, p = 2/8.
    # The minimum effect is 1% of the default's mean 1.0 = 0.01.
    result = judged([0.7, 0.9, 0.8], [1.0, 1.0, 1.0])
    assert result.pairs == 3 and result.diff == pytest.approx(-0.2) and result.relative == pytest.approx(-0.2)
    assert (result.ci_low, result.ci_high) == (pytest.approx(-0.448414, abs=1e-6), pytest.approx(0.048414, abs=1e-6))
    assert result.better == 3 and result.p_value == pytest.approx(0.25) and result.min_effect == pytest.approx(0.01)
    assert result.verdict == "inconclusive"
    # the t test of gain <= 0.01: t = 0.19 / 0.057735 = 3.291, one-sided p(2 df) = 0.0406 > 0.025
    assert result.p_beats == pytest.approx(0.0406, abs=5e-4)
    assert verdict_phrase(result).startswith("inconclusive at 3 seeds: about ")


def test_five_seeds_that_agree_beat_the_default():
    # differences -0.3, -0.25, -0.2, -0.15, -0.1: mean -0.2, sd sqrt(0.025 / 4) = 0.0790569,
    # standard error 0.0353553, t(0.975, 4 df) = 2.776445, half-width 0.098163: [-0.298163, -0.101837],
    # wholly beyond -0.01. Sign flips: only all-minus and all-plus reach |mean| 0.2: p = 2/32 = 0.0625.
    result = judged([0.7, 0.75, 0.8, 0.85, 0.9], [1.0] * 5)
    assert (result.ci_low, result.ci_high) == (pytest.approx(-0.298163, abs=1e-6), pytest.approx(-0.101837, abs=1e-6))
    assert result.p_value == pytest.approx(0.0625) and result.better == 5
    assert result.verdict == "beats" and verdict_phrase(result) == "beats the default by more than the minimum effect 0.01"


def test_a_tiny_difference_at_every_seed_is_equivalent_never_beats():
    result = judged([1.0 + 1e-9] * 5, [1.0] * 5)
    assert result.verdict == "equivalent"
    assert judged([1.0 - 1e-9] * 5, [1.0] * 5, min_effect="0").verdict != "equivalent"  # no margin: no equivalence


def test_higher_is_better_where_the_objective_is_maximised():
    assert judged([0.7, 0.75, 0.8, 0.85, 0.9], [1.0] * 5, mode="max").verdict == "worse"
    assert judged([1.3, 1.25, 1.2, 1.15, 1.1], [1.0] * 5, mode="max").verdict == "beats"


def test_an_absolute_minimum_effect_larger_than_the_difference_makes_it_equivalent():
    # the five-seed differences above lie in [-0.298, -0.102]: inside +/-0.5 but not beyond 0.5
    assert judged([0.7, 0.75, 0.8, 0.85, 0.9], [1.0] * 5, min_effect="0.5").verdict == "equivalent"
    # ... and beyond 0.05 (5% of the default's 1.0)
    assert judged([0.7, 0.75, 0.8, 0.85, 0.9], [1.0] * 5, min_effect="5%").verdict == "beats"


def test_one_pair_says_nothing():
    result = judged([0.5], [1.0])
    assert math.isnan(result.ci_low) and math.isnan(result.p_value) and result.verdict == "inconclusive"
    assert verdict_phrase(result) == "inconclusive at 1 paired seed(s)"


def test_the_sign_flip_p_value_is_exact():
    # differences -0.3, +0.1, -0.1 (sum -0.3): the 8 sign patterns sum to +-0.5, +-0.3 (twice each) and
    # +-0.1; those at least as far from 0 as -0.3 are 6 of 8
    assert sign_flip_p([-0.3, 0.1, -0.1]) == pytest.approx(0.75)
    assert sign_flip_p([-1.0] * 10) == pytest.approx(2 / 1024)
    assert sign_flip_p([0.0, 0.0]) == 1.0 and math.isnan(sign_flip_p([1.0]))


def test_the_sign_flip_p_value_is_scipys_permutation_test():
    rng = np.random.default_rng(3)
    for n in (2, 3, 5, 8, 12):
        for _ in range(20):
            diffs = np.round(rng.normal(0.2, 1.0, n), 2)  # rounded: ties between patterns, as real values give
            scipy_p = stats.permutation_test((diffs,), np.mean, permutation_type="samples", alternative="two-sided",
                                             n_resamples=np.inf).pvalue
            assert sign_flip_p(diffs) == pytest.approx(scipy_p)


def test_holm_adjusts_step_down():
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1: 0.03, 0.06, 0.04 -> kept monotone: 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, math.nan])[0] == 0.5  # a config with no pairs does not count


def comparison(p_beats: float) -> Comparison:
    return Comparison(5, -0.2, -0.2, -0.3, -0.1, 5, 0.06, 0.01, p_beats, 1.0, 1.0, None)


def test_several_configs_are_corrected_for_multiplicity():
    alone = judge([comparison(0.02)])[0]
    assert alone.verdict == "beats" and alone.p_verdict == 0.02
    # beside a second config the smaller p (0.015) is doubled to 0.03 and neither beats
    pair = judge([comparison(0.02), comparison(0.015)])
    assert [c.verdict for c in pair] == ["inconclusive", "inconclusive"] and pair[0].corrected_over == 2
    assert [c.verdict for c in judge([comparison(0.02), comparison(0.001)])] == ["beats", "beats"]


@pytest.mark.parametrize("text, expected", [("1%", (0.01, True)), ("0.02", (0.02, False)), (" 0 ", (0.0, False))])
def test_min_effect_is_absolute_or_relative(text, expected):
    assert parse_min_effect(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["-1", "abc", "nan", "%", "inf"])
def test_a_bad_min_effect_is_refused(text):
    with pytest.raises(ValueError):
        parse_min_effect(text)


def coverage(interval, n: int, reps: int = 2000, truth: float = 0.3) -> float:
    rng = np.random.default_rng(n)
    hits = 0
    for _ in range(reps):
        low, high = interval(rng.normal(truth, 1.0, n))
        hits += low <= truth <= high
    return hits / reps


def percentile_bootstrap(values, resamples: int = 2000):
    """The interval the confirmation printed before: percentile bootstrap of the mean."""
    rng = np.random.default_rng(1)
    means = rng.choice(values, size=(resamples, len(values))).mean(axis=1)
    return np.quantile(means, 0.025), np.quantile(means, 0.975)


@pytest.mark.parametrize("n", [3, 5, 10])
def test_the_interval_covers_the_true_difference_95_percent_of_the_time(n):
    # 2,000 simulated confirmations of paired normal differences at each N
    assert 0.93 <= coverage(t_interval, n) <= 0.97


@pytest.mark.parametrize("n", [3, 5])
def test_the_old_percentile_bootstrap_fails_the_same_check(n):
    # its coverage at 3 and 5 seeds is about 76% and 84%: the check above is not one any interval passes
    assert coverage(percentile_bootstrap, n) < 0.90


def test_the_seeds_estimate_decides_at_about_80_percent_when_the_spread_is_the_observed_one():
    # a true gain of 0.1 with sd 0.15 and a minimum effect of 0.01: simulate 2,000 confirmations at the
    # estimated number of seeds; about 80% of them (at least, rounding up) should say "beats": with one
    # config that is the interval of the gain wholly above 0.01 (test_five_seeds_that_agree_... and
    # test_several_configs_... check that rule)
    needed = seeds_needed(0.1, 0.15, 0.01)
    assert 5 <= needed <= 30
    rng = np.random.default_rng(0)
    beats = sum(t_interval(rng.normal(0.1, 0.15, needed))[0] > 0.01 for _ in range(2000))
    assert 0.78 <= beats / 2000 <= 0.9
    assert seeds_needed(0.01, 0.1, 0.01) is None  # the gain is the minimum effect: no N decides it


def test_spread_of_1_2_3():
    # mean 2, sd sqrt(((1-2)^2 + 0 + (3-2)^2) / 2) = 1; t(0.975, 2) * 1 / sqrt(3) = 2.484138
    s = spread([1.0, 2.0, 3.0])
    assert (s.n, s.mean, s.sd) == (3, 2.0, 1.0)
    assert (s.ci_low, s.ci_high) == (pytest.approx(2 - 2.484138, abs=1e-6), pytest.approx(2 + 2.484138, abs=1e-6))
    assert spread([2.0, 2.0]).ci_low == 2.0  # identical values: a zero-width interval, not an error


def test_rank_agreement():
    assert rank_agreement([1.0, 2.0, 3.0], [0.1, 0.2, 0.3]) == pytest.approx(1.0)
    assert rank_agreement([1.0, 2.0, 3.0], [0.3, 0.2, 0.1]) == pytest.approx(-1.0)
    assert math.isnan(rank_agreement([1.0, 2.0], [1.0, 2.0]))  # two configs rank nothing


def test_a_seed_whose_value_is_not_finite_is_left_out_and_said_never_a_p_of_0():
    # worked by hand: seeds 1 and 3 pair (0.8 - 1, 0.7 - 1) = (-0.2, -0.3); seed 2 is a failed run
    c = compare([0.8, math.nan, 0.7], [1.0, 1.0, 1.0], "min")
    assert (c.pairs, c.dropped) == (2, 1) and c.diff == pytest.approx(-0.25)
    assert c.p_value == pytest.approx(0.5)  # both signs alike: 2 of the 4 patterns are as extreme
    assert "1 seed(s) left out" in verdict_phrase(judge([c])[0])
    assert compare([0.8, math.inf, 0.7, 0.6], [1.0, 1.0, 1.0, 1.0], "min").dropped == 1
    assert math.isnan(sign_flip_p([-0.2, math.nan, -0.3]))  # was 0.0


def test_a_direction_other_than_min_or_max_and_unpaired_values_are_refused():
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'MAX'"):
        compare([1.0, 2.0], [1.0, 2.0], "MAX")
    with pytest.raises(ValueError, match="paired by seed"):
        compare([1.0, 2.0, 3.0], [1.0], "min")


@pytest.mark.parametrize("pairs, least", [(2, 0.5), (3, 0.25), (5, 0.0625)])
def test_the_least_p_said_is_that_of_the_seeds_compared(pairs, least):
    # exact two-sided sign flips: only the all-better and all-worse patterns are as extreme, 2 of 2^n
    assert least_p(pairs) == least
    assert sign_flip_p([-1.0 - k for k in range(pairs)]) == pytest.approx(least)


def test_a_relative_minimum_effect_is_taken_of_each_seeds_default():
    # worked by hand: defaults 1.0, 2.0, 3.0, config 0.9, 1.9, 2.9: gains 0.1 at each seed; 5% of each
    # default gives margins 0.05, 0.1, 0.15, so gain - margin = 0.05, 0, -0.05: mean 0, sd 0.05;
    # t = 0 and the one-sided p of "beats" is 0.5. The old rule took 5% of the mean 2.0 = 0.1 as a
    # fixed margin and the same 0 gain beyond it. The margin said is the mean of the three, 0.1.
    c = compare([0.9, 1.9, 2.9], [1.0, 2.0, 3.0], "min", "5%")
    assert c.min_effect == pytest.approx(0.1) and c.p_beats == pytest.approx(0.5)
    # gain + margin = 0.15, 0.2, 0.25: mean 0.2, sd 0.05, se 0.028868, t = 6.928 (2 df) for "worse"
    assert c.p_worse == pytest.approx(1 - 0.010102, abs=1e-5)


def test_a_relative_minimum_effect_keeps_false_beats_at_2_5_percent_where_the_default_is_noisy():
    # the case: a default of sd 0.3 around 1.0 and a config truly 1% better with tightly
    # paired differences, 5 seeds, 1,000 repetitions (fixed seed; benchmarks/verdicts.py runs 2,000
    # at 3, 5, 10 seeds and sd 0.1 too: 1.2-2.8%). The old rule, a fixed 1% of the sample mean,
    # gives about 20% here: the check can fail.
    assert relative_margin(5, 0.3, 1000)["false beats"] <= 0.035
    assert relative_margin(5, 0.3, 400, per_seed=False)["false beats"] >= 0.12


def test_a_percentage_of_a_default_whose_mean_is_about_0_is_refused():
    with pytest.raises(ValueError, match="about 0.*absolute --min-effect"):
        compare([0.1, -0.2, 0.05], [0.5, -0.5, 0.0], "min", "1%")
    assert compare([0.1, -0.2, 0.05], [0.5, -0.5, 0.0], "min", "0.01").pairs == 3  # an absolute one is fine


def test_the_equivalence_estimate_counts_both_one_sided_tests():
    # TOST needs both tests: a true 0 with sd = margin needs about 13 seeds, not the 10 one test
    # needs, and a true 0 never gets fewer than a true 0.002; at the estimate, 75-85% decide
    assert seeds_needed(0.0, 0.01, 0.01) == 13 and seeds_needed(0.002, 0.01, 0.01) == 15
    n, decided = decided_at_estimate(0.0, 0.01, 0.01, 1000)
    assert n == 13 and 0.75 <= decided <= 0.85


def test_skewed_differences_are_said_and_not_given_a_verdict():
    # nine gains of about 1 and a tenth of 3: sample skewness +3.16, far beyond the 1.38 that normal
    # samples of 10 reach 95% of the time; the t tests alone would call it beats (mean 1.2, se 0.2)
    config = np.array([1.0, 0.95, 1.05, 1.0, 0.98, 1.02, 1.0, 0.97, 1.03, 3.0])
    c = judge([compare(1.0 + config, np.ones(10), "max", "0.01")])[0]
    assert normal_skewness_range(10) == pytest.approx(1.38, abs=0.05)
    assert c.skewed and c.would_be == "beats" and c.verdict == "inconclusive"
    assert "too skewed for the t interval" in verdict_phrase(c)


def test_the_skew_rule_cuts_false_beats_where_it_can_see_the_tail():
    # gains at the margin with lognormal(sigma 1) noise, its tail on the worse side, 20 seeds, 1,000
    # repetitions: the t tests alone say beats about 13% of the time, with the rule about 4%; normal
    # gains keep their 2.5% (benchmarks/verdicts.py: at 5 seeds the rule sees almost nothing)
    skewed = skewed_at_margin(20, 1.0, 1000)
    assert skewed["false beats, t alone"] >= 0.09 and skewed["false beats, with the rule"] <= 0.06
    assert skewed_at_margin(10, 0.0, 1000)["false beats, with the rule"] <= 0.035
