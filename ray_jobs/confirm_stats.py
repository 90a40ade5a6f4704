"""The statistics of a confirmation, valid at the 3-10 training seeds a confirmation runs.

Per config: its mean over seeds with a Student t 95% interval. Against the documented default,
paired by seed:
  * the mean difference with a paired Student t 95% interval (not a percentile bootstrap: at 3
    seeds a nominal 95% bootstrap interval of a mean covers the truth about 76% of the time,
    and it is exactly [min, max] of the three differences; tests/ray_jobs/test_confirm_stats.py
    simulates both);
  * the sign pattern, "better at k of n seeds", and an exact sign-flip permutation p-value of no
    difference (scipy's permutation_test over all 2^n sign patterns; at 3 seeds it is never below
    0.25 two-sided: three seeds cannot show a difference without assuming normal errors);
  * a verdict against a minimum effect that matters, delta (`--min-effect`, default 1% of the
    default's mean): "beats" (the interval beyond delta on the better side), "worse" (beyond
    delta on the worse side), "equivalent" (inside +/- delta: two one-sided tests), else
    "inconclusive", with an estimate of the seeds that would decide it at the observed spread.
Several configs against one default: each verdict is a one-sided t test against a margin, and
Holm's step-down correction runs over the configs (`judge`), so that the chance of any false
"beats" among them stays at 2.5%. With one config it is exactly the interval rule above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = (1 - CONFIDENCE) / 2  # each one-sided test: the 95% interval's tail
POWER = 0.8  # the power at which "about M seeds would decide it" is estimated
MOST_SEEDS = 1000  # beyond this, the estimate says "more than"
DEFAULT_MIN_EFFECT = "1%"  # of the default's mean, where a family's objective declares none
EXACT_SIGN_FLIPS = 16  # exact enumeration up to 2^16 sign patterns; random ones (seeded) beyond
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


def sign_flip_p(diffs) -> float:
    """Exact two-sided p-value of "no difference" from flipping the sign of each paired difference
    (every pattern up to EXACT_SIGN_FLIPS seeds). NaN below 2 pairs; 1 where all are 0."""
    diffs = np.asarray(diffs, dtype=float)
    if len(diffs) < 2 or not np.isfinite(diffs).all():  # a NaN would compare as no pattern beyond it: p 0
        return math.nan
    if not np.any(diffs):
        return 1.0
    exact = len(diffs) <= EXACT_SIGN_FLIPS
    result = stats.permutation_test((diffs,), np.mean, permutation_type="samples", alternative="two-sided",
                                    n_resamples=np.inf if exact else 99_999, rng=np.random.default_rng(0))
    return float(result.pvalue)


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


def min_effect_of(text: str, default_mean: float) -> float:
    """delta, absolute: --min-effect as given, a percentage taken of |the default's mean|."""
    value, relative = parse_min_effect(text)
    return value * abs(default_mean) if relative else value


def one_sided_p(gain: float, margin: float, sem: float, df: int, above: bool) -> float:
    """p of the t test of H0 "gain <= margin" (above) or "gain >= margin" (not above)."""
    if sem == 0:  # every seed gave the same difference: it is or is not beyond the margin
        return 0.0 if (gain > margin if above else gain < margin) else 1.0
    t = (gain - margin) / sem
    return float(stats.t.sf(t, df) if above else stats.t.cdf(t, df))


def seeds_needed(gain: float, sd: float, delta: float) -> int | None:
    """About how many seeds would reach a verdict at POWER if the true gain and spread were the
    observed ones: a one-sided t test at ALPHA against the nearer margin (+delta for "beats" where
    the gain exceeds it, -delta for "worse", both for "equivalent" inside), by the noncentral t.
    None where it cannot be estimated (no spread) or needs more than MOST_SEEDS."""
    distance = abs(abs(gain) - delta)
    if not (sd > 0 and distance > 0 and math.isfinite(sd)):
        return None
    for n in range(2, MOST_SEEDS + 1):
        critical = stats.t.ppf(1 - ALPHA, n - 1)
        if stats.nct.sf(critical, n - 1, distance * math.sqrt(n) / sd) >= POWER:
            return n
    return None


def compare(config, default, mode: str, min_effect: str = DEFAULT_MIN_EFFECT) -> Comparison:
    """`config` against `default`, values paired by seed (same length, same seed order, only seeds
    where both ended healthy); lower is better where mode is "min", higher where "max". A seed where
    either value is not finite (a failed run) is dropped and counted. The verdict is left to `judge`."""
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
    sign = 1.0 if mode == "max" else -1.0  # gain = sign * diff: positive is better
    gains = sign * diffs
    default_mean = float(default.mean()) if n else math.nan
    delta = min_effect_of(min_effect, default_mean) if n else math.nan
    diff = float(diffs.mean()) if n else math.nan
    low, high = t_interval(diffs)
    if n < 2:
        return Comparison(n, diff, relative(diff, default_mean), low, high, int(np.sum(gains > 0)), math.nan, delta,
                          math.nan, math.nan, math.nan, None, dropped=dropped)
    gain, sd = float(gains.mean()), float(gains.std(ddof=1))
    sem, df = sd / math.sqrt(n), n - 1
    p_beats = one_sided_p(gain, delta, sem, df, above=True)
    p_worse = one_sided_p(gain, -delta, sem, df, above=False)
    p_equivalent = max(one_sided_p(gain, -delta, sem, df, above=True), one_sided_p(gain, delta, sem, df, above=False))
    return Comparison(n, diff, relative(diff, default_mean), low, high, int(np.sum(gains > 0)), sign_flip_p(diffs),
                      delta, p_beats, p_worse, p_equivalent, seeds_needed(gain, sd, delta), dropped=dropped)


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
        judged.append(replace(c, verdict=verdict, p_verdict=p, corrected_over=len(comparisons)))
    return judged


def verdict_phrase(c: Comparison, against: str = "the default") -> str:
    """The verdict in words, with what would decide an inconclusive one, and the seeds left out."""
    dropped = f" ({c.dropped} seed(s) left out: a value that is not finite, a failed run)" if c.dropped else ""
    return verdict_words(c, against) + dropped


def verdict_words(c: Comparison, against: str) -> str:
    delta = f"{c.min_effect:.3g}"
    if c.verdict == "beats":
        return f"beats {against} by more than the minimum effect {delta}"
    if c.verdict == "worse":
        return f"worse than {against} by more than the minimum effect {delta}"
    if c.verdict == "equivalent":
        return f"equivalent to {against} (within +/-{delta})"
    if c.pairs < 2:
        return f"inconclusive at {c.pairs} paired seed(s)"
    if c.seeds_needed is None:
        return (f"inconclusive at {c.pairs} seeds: the difference is about the minimum effect {delta} "
                f"(or has no spread); no number of seeds is estimated to decide it")
    return (f"inconclusive at {c.pairs} seeds: about {max(c.seeds_needed, c.pairs + 1)} would decide it "
            f"at the observed spread (an estimate)")


def least_p(pairs: int) -> float:
    """The smallest two-sided p the exact sign-flip test can give at `pairs` seeds: 2 / 2^pairs."""
    return 2.0 ** (1 - pairs) if pairs >= 1 else math.nan


def rank_agreement(sweep_values, confirmed_means) -> float:
    """Spearman's rank correlation of the sweep's values and the confirmed means of the same
    configs: 1 where the sweep ranked them as their confirmation does. NaN below 3 configs."""
    if len(sweep_values) < 3:
        return math.nan
    return float(stats.spearmanr(sweep_values, confirmed_means).statistic)
