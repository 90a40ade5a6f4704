"""The statistics of a confirmation: each config's mean over training seeds with a bootstrap
confidence interval, and its difference to the documented default paired by seed, with its interval,
the probability that it improves on the default, and a verdict. scipy.stats.bootstrap does the
resampling (percentile intervals: with 3-5 seeds BCa's acceleration estimate is unstable).

With few seeds a bootstrap interval is narrow: the mean of 3 values resamples to at most 10
distinct means, so at N = 3 "beats the default at 95%" means, in effect, better at every seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap, spearmanr

CONFIDENCE = 0.95
RESAMPLES = 9999
SEED = 0  # the resampling's seed, so a report reads the same every time it is rebuilt


@dataclass(frozen=True)
class Spread:
    n: int
    mean: float
    sd: float  # sample standard deviation (n - 1); NaN below 2 values
    ci_low: float  # 95% bootstrap interval of the mean; NaN below 2 values
    ci_high: float


@dataclass(frozen=True)
class Comparison:
    pairs: int  # seeds where both the config and the default ended healthy
    diff: float  # mean of config - default over those seeds
    ci_low: float
    ci_high: float
    p_better: float  # share of bootstrap resamples whose mean difference is an improvement
    verdict: str


def mean_interval(values) -> tuple[float, float, np.ndarray]:
    """(low, high, resampled means) of the mean of `values`; NaNs and no resamples below 2 values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan, np.array([])
    if np.all(values == values[0]):  # every resample is the same: scipy refuses a degenerate sample
        return float(values[0]), float(values[0]), np.full(RESAMPLES, values[0])
    result = bootstrap((values,), np.mean, confidence_level=CONFIDENCE, n_resamples=RESAMPLES,
                       method="percentile", rng=np.random.default_rng(SEED))
    interval = result.confidence_interval
    return float(interval.low), float(interval.high), result.bootstrap_distribution


def spread(values) -> Spread:
    values = np.asarray(values, dtype=float)
    low, high, _ = mean_interval(values)
    sd = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return Spread(len(values), float(values.mean()) if len(values) else math.nan, sd, low, high)


def compare(config, default, mode: str) -> Comparison:
    """`config` against `default`, values paired by seed (same length, same seed order, only
    seeds where both ended healthy). Lower is better where mode is "min"."""
    diffs = np.asarray(config, dtype=float) - np.asarray(default, dtype=float)
    sign = 1.0 if mode == "min" else -1.0  # an improvement is a negative signed difference
    low, high, resampled = mean_interval(diffs)
    p_better = float(np.mean(sign * resampled < 0)) if len(resampled) else math.nan
    if len(diffs) < 2:
        verdict = f"not distinguishable with {len(diffs)} paired seed(s)"
    elif max(sign * low, sign * high) < 0:  # the whole interval on the better side
        verdict = f"beats the documented default at {CONFIDENCE:.0%}"
    elif min(sign * low, sign * high) > 0:
        verdict = f"worse than the documented default at {CONFIDENCE:.0%}"
    else:
        verdict = f"not distinguishable with {len(diffs)} seeds"
    return Comparison(len(diffs), float(diffs.mean()) if len(diffs) else math.nan, low, high, p_better, verdict)


def rank_agreement(sweep_values, confirmed_means) -> float:
    """Spearman's rank correlation of the sweep's values and the confirmed means of the same
    configs: 1 where the sweep ranked them as their confirmation does. NaN below 3 configs."""
    if len(sweep_values) < 3:
        return math.nan
    return float(spearmanr(sweep_values, confirmed_means).statistic)
