"""The statistics of a confirmation at the 3-20 training seeds a confirmation runs.

Per config: its mean over seeds with a Student t 95% interval. Against the documented default,
paired by seed:
  * the mean difference with a paired Student t 95% interval (not a percentile bootstrap: at 3
    seeds a nominal 95% bootstrap interval of a mean covers the truth about 76% of the time,
    and it is exactly [min, max] of the three differences; tests/ray_jobs/confirmation/test_stats.py
    simulates both). Exact for normal differences, close for symmetric heavy-tailed ones, not for
    skewed ones (`too_skewed`);
  * the sign pattern, "better at k of n seeds", and an exact sign-flip permutation p-value of no
    difference (all 2^n sign patterns; never below 2/2^n: 0.25 at 3 seeds, which cannot show a
    difference without assuming normal errors);
  * a verdict against a minimum effect that matters (`--min-effect`: absolute, or a percentage
    of each seed's default, `margins_of`): "beats" (the gain beyond it, a one-sided t test at
    2.5%), "worse" (beyond it on the worse side), "equivalent" (inside +/- it: two one-sided
    tests), else "inconclusive", with an estimate of the seeds that would decide it at the
    observed spread. A seed whose value is not finite is a failed run: left out and counted.
Several configs against one default: Holm's step-down correction runs over the configs (`judge`),
so that the chance of any false "beats" among them stays at 2.5%. With one config it is exactly
the interval rule above. --seeds auto decides over looks instead (ray_jobs/confirmation/sequential.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from losstune.ray_jobs.confirmation.small_samples import sign_flip_p, skewness_of, too_skewed
from losstune.trainables.family_api import DEFAULT_MIN_EFFECT  # 1% of the default's value at each seed

CONFIDENCE = 0.95
ALPHA = (1 - CONFIDENCE) / 2  # each one-sided test: the 95% interval's tail
POWER = 0.8  # the power at which "about M seeds would decide it" is estimated
MOST_SEEDS = 1000  # beyond this, the estimate says "more than"
ZERO_MEAN = 1e-9  # a default mean within this of 0 (relative to its largest value) takes no percentage
INTERVAL = "paired Student t"


@dataclass(frozen=True)
class Spread:
    n: int
    mean: float
    sd: float  # sample standard deviation (n - 1); NaN below 2 values
    ci_low: float  # Student t 95% interval of the mean; NaN below 2 values
    ci_high: float


@dataclass(frozen=True)
class Comparison:
    pairs: int  # seeds where both the config and the default ended healthy
    diff: float  # mean of config - default over those seeds, in the metric's units
    relative: float  # diff / |the default's mean over those seeds|
    ci_low: float  # paired Student t 95% interval of diff
    ci_high: float
    better: int  # seeds at which the config did better than the default
    p_value: float  # exact sign-flip p-value of no difference, two-sided
    min_effect: float  # delta, absolute
    p_beats: float  # one-sided t test of "the gain is at most delta"
    p_worse: float  # ... of "the loss is at most delta"
    p_equivalent: float  # two one-sided tests of "|diff| is at least delta": the larger p
    seeds_needed: int | None  # estimated seeds for a verdict at the observed spread; None: not estimable
    verdict: str = ""  # beats / worse / equivalent / inconclusive (set by `judge`)
    p_verdict: float = math.nan  # the verdict's p-value after Holm's correction
    corrected_over: int = 1  # configs the verdicts were corrected over
    dropped: int = 0  # seeds left out because the config's or the default's value was not finite
    skewness: float = math.nan  # of the gains (adjusted Fisher-Pearson); NaN below 3 seeds
    skewed: bool = False  # beyond what normal differences give 95% of the time at this N (`too_skewed`)
    would_be: str = ""  # the verdict a skewed comparison's t tests alone would give
    decided_at: int = 0  # --seeds auto: the seeds at which it was decided, or ran undecided (sequential.py)


def t_interval(values) -> tuple[float, float]:
    """Student t 95% interval of the mean; NaNs below 2 values; zero width where all are equal."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    mean, sem = float(values.mean()), float(values.std(ddof=1)) / math.sqrt(len(values))
    half = float(stats.t.ppf(1 - ALPHA, len(values) - 1)) * sem
    return mean - half, mean + half


def spread(values) -> Spread:
    values = np.asarray(values, dtype=float)
    low, high = t_interval(values)
    sd = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return Spread(len(values), float(values.mean()) if len(values) else math.nan, sd, low, high)


def parse_min_effect(text: str) -> tuple[float, bool]:
    """--min-effect: "0.02" (absolute, the metric's units) or "1%" (relative to the default's mean)
    -> (value, relative); ValueError with the reason for anything else."""
    raw = str(text).strip()
    relative = raw.endswith("%")
    try:
        value = float(raw[:-1] if relative else raw)
    except ValueError:
        raise ValueError(f"expected a number or a percentage such as 1%, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a finite number >= 0, got {text!r}")
    return (value / 100, True) if relative else (value, False)


def margins_of(text: str, default) -> np.ndarray:
    """The minimum effect at each seed, absolute: --min-effect as given, or a percentage of that
    seed's default value. Per seed, so that the test of "the gain beats r% of the default" carries
    the default's own noise: a fixed r% of the default's sample mean ignored it, and at a default sd
    of 0.3 of its mean called a config 1% better "beats" in 15-25% of cases instead of 2.5%
    (tests/ray_jobs/confirmation/test_stats.py simulates both). ValueError where a percentage is taken
    of a default whose mean is about 0: no margin at all."""
    value, relative = parse_min_effect(text)
    default = np.asarray(default, dtype=float)
    if not relative:
        return np.full(len(default), value)
    if value > 0 and len(default) and abs(default.mean()) <= ZERO_MEAN * max(1.0, float(np.abs(default).max())):
        raise ValueError(f"--min-effect {text}: the default's mean is {default.mean():.3g}, about 0, and a percentage "
                         "of it is no margin; give an absolute --min-effect in the metric's units, e.g. 0.01")
    return value * np.abs(default)


def one_sided_p(values, above: bool) -> float:
    """p of the t test of H0 "mean <= 0" (above) or "mean >= 0" (not above)."""
    mean, sem = float(np.mean(values)), float(np.std(values, ddof=1)) / math.sqrt(len(values))
    if sem == 0:  # every seed gave the same value: it is or is not beyond 0
        return 0.0 if (mean > 0 if above else mean < 0) else 1.0
    t, df = mean / sem, len(values) - 1
    return float(stats.t.sf(t, df) if above else stats.t.cdf(t, df))


def seeds_needed(gain: float, sd: float, delta: float) -> int | None:
    """About how many seeds would reach a verdict at POWER if the true gain and spread were the
    observed ones: a one-sided t test at ALPHA against the nearer margin (+delta for "beats" where
    the gain exceeds it, -delta for "worse"), or inside the margins both (TOST: equivalence needs
    both one-sided tests, so its power is that of the two together), by the noncentral t.
    None where it cannot be estimated (no spread) or needs more than MOST_SEEDS."""
    if not (sd > 0 and math.isfinite(sd) and abs(gain) != delta) or power(gain, sd, delta, MOST_SEEDS) < POWER:
        return None
    low, high = 1, MOST_SEEDS  # power grows with n: the least n at POWER by bisection
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if power(gain, sd, delta, middle) >= POWER else (middle, high)
    return high


def power(gain: float, sd: float, delta: float, n: int) -> float:
    """The chance that n seeds decide it, at a true gain and sd. For equivalence the two one-sided
    tests' joint power, P(T_low > c) + P(T_high < -c) - 1, a lower bound that is close where it
    matters (Phillips 1990)."""
    critical, df, scale = stats.t.ppf(1 - ALPHA, n - 1), n - 1, math.sqrt(n) / sd
    if abs(gain) > delta:
        return float(stats.nct.sf(critical, df, (abs(gain) - delta) * scale))
    low, high = (gain + delta) * scale, (gain - delta) * scale
    return max(0.0, float(stats.nct.sf(critical, df, low) + stats.nct.cdf(-critical, df, high) - 1))


def compare(config, default, mode: str, min_effect: str = DEFAULT_MIN_EFFECT) -> Comparison:
    """`config` against `default`, values paired by seed (same length, same seed order, only seeds
    where both ended healthy); lower is better where mode is "min", higher where "max". A seed where
    either value is not finite (a failed run) is dropped and counted. Each claim is a one-sided t
    test of per-seed values: "beats" of gain_i - m_i > 0, "worse" of gain_i + m_i < 0, "equivalent"
    of both the other way, where m_i is the minimum effect at seed i (`margins_of`). The verdict is
    left to `judge`."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    config, default = np.asarray(config, dtype=float), np.asarray(default, dtype=float)
    if config.shape != default.shape or config.ndim != 1:
        raise ValueError(f"paired by seed: {config.shape} config values against {default.shape} of the default")
    finite = np.isfinite(config) & np.isfinite(default)
    dropped = int(np.sum(~finite))
    config, default = config[finite], default[finite]
    diffs = config - default
    n = len(diffs)
    gains = (1.0 if mode == "max" else -1.0) * diffs  # positive is better
    margins = margins_of(min_effect, default)
    default_mean = float(default.mean()) if n else math.nan
    delta = float(margins.mean()) if n else math.nan
    diff = float(diffs.mean()) if n else math.nan
    low, high = t_interval(diffs)
    if n < 2:
        return Comparison(n, diff, relative(diff, default_mean), low, high, int(np.sum(gains > 0)), math.nan, delta,
                          math.nan, math.nan, math.nan, None, dropped=dropped)
    p_equivalent = max(one_sided_p(gains + margins, above=True), one_sided_p(gains - margins, above=False))
    skewness = skewness_of(gains)
    return Comparison(n, diff, relative(diff, default_mean), low, high, int(np.sum(gains > 0)), sign_flip_p(diffs),
                      delta, one_sided_p(gains - margins, above=True), one_sided_p(gains + margins, above=False),
                      p_equivalent, seeds_needed(float(gains.mean()), float(gains.std(ddof=1)), delta),
                      dropped=dropped, skewness=skewness, skewed=too_skewed(skewness, n))


def relative(diff: float, default_mean: float) -> float:
    return diff / abs(default_mean) if default_mean else math.nan


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count)."""
    ranked = sorted((p, k) for k, p in enumerate(p_values) if not math.isnan(p))
    adjusted, running = [math.nan] * len(p_values), 0.0
    for rank, (p, k) in enumerate(ranked):
        running = max(running, min(1.0, (len(ranked) - rank) * p))
        adjusted[k] = running
    return adjusted


def judge(comparisons: list[Comparison]) -> list[Comparison]:
    """The verdict of each config against the default, Holm-corrected over the configs for each of
    the three claims (beats, worse, equivalent); at most one claim can hold for a config."""
    corrected = {claim: holm([getattr(c, f"p_{claim}") for c in comparisons])
                 for claim in ("beats", "worse", "equivalent")}
    judged = []
    for k, c in enumerate(comparisons):
        verdict, p = "inconclusive", min((corrected[claim][k] for claim in corrected), default=math.nan)
        for claim in ("beats", "worse", "equivalent"):
            if corrected[claim][k] < ALPHA:
                verdict, p = claim, corrected[claim][k]
        would_be = verdict if c.skewed and verdict != "inconclusive" else ""
        judged.append(replace(c, verdict="inconclusive" if would_be else verdict, p_verdict=p,
                              corrected_over=len(comparisons), would_be=would_be))
    return judged


def rank_agreement(sweep_values, confirmed_means) -> float:
    """Spearman's rank correlation of the sweep's values and the confirmed means of the same
    configs: 1 where the sweep ranked them as their confirmation does. NaN below 3 configs."""
    if len(sweep_values) < 3:
        return math.nan
    return float(stats.spearmanr(sweep_values, confirmed_means).statistic)
