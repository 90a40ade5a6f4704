"""What a t interval cannot see at the few seeds a confirmation runs (ray_jobs/confirmation/stats.py):
an exact sign-flip p-value, which assumes no normal errors, and the skew rule, which flags gains too
skewed for the interval's 95%."""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import stats


EXACT_SIGN_FLIPS = 16  # exact enumeration up to 2^16 sign patterns; random ones (seeded) beyond


SKEW_SAMPLES = 20_000  # normal samples behind the skew rule's range at each N


SKEW_FROM = 5  # the fewest seeds the skew rule is applied at


def sign_flip_p(diffs) -> float:
    """Exact two-sided p-value of "no difference" from flipping the sign of each paired difference:
    the share of the 2^n sign patterns whose mean is at least as far from 0 (every pattern up to
    EXACT_SIGN_FLIPS seeds, 99,999 seeded random ones beyond, the observed one counted). NaN below 2
    pairs; 1 where all are 0. The test scipy.stats.permutation_test does (the tests check they
    agree), by one matrix product: 50-1000x faster, which the simulations of benchmarks/verdicts.py
    and the tests need."""
    diffs = np.asarray(diffs, dtype=float)
    if len(diffs) < 2 or not np.isfinite(diffs).all():  # a NaN would compare as no pattern beyond it: p 0
        return math.nan
    if not np.any(diffs):
        return 1.0
    observed = abs(diffs.sum()) * (1 - 1e-12)  # patterns equal to it up to rounding count as extreme
    extreme = np.abs(sign_patterns(len(diffs)) @ diffs) >= observed
    exact = len(diffs) <= EXACT_SIGN_FLIPS
    return float(extreme.mean() if exact else (extreme.sum() + 1) / (len(extreme) + 1))


@functools.cache
def sign_patterns(n: int) -> np.ndarray:
    """Every pattern of n signs (a row each) up to EXACT_SIGN_FLIPS, else 99,999 random ones (seeded)."""
    if n <= EXACT_SIGN_FLIPS:
        return 1.0 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    return np.random.default_rng(0).choice([-1.0, 1.0], size=(99_999, n))


def skewness_of(gains) -> float:
    """The adjusted sample skewness of the gains; NaN below 3 values or where they are all but equal."""
    gains = np.asarray(gains, dtype=float)
    if len(gains) < 3 or not gains.std() > 1e-9 * np.abs(gains).max():
        return math.nan
    return float(stats.skew(gains, bias=False))


@functools.cache
def normal_skewness_range(n: int) -> float:
    """The 95th percentile of |sample skewness| of n normal values (simulated once, seeded)."""
    samples = np.random.default_rng(0).normal(size=(SKEW_SAMPLES, n))
    return float(np.quantile(np.abs(stats.skew(samples, axis=1, bias=False)), 0.95))


def too_skewed(skewness: float, n: int) -> bool:
    """The skew rule: the gains' sample skewness beyond what normal differences give 95% of the time
    at n seeds. The t interval's 95% assumes roughly symmetric differences: lognormal ones (sigma 1)
    cover 83-87% and give 13-16% false "beats" at the margin. The rule catches 23% of those at 5
    seeds, 53% at 10, 86% at 20, and a sample that never saw the long tail cannot show it: at 3-5
    seeds no rule can (docs/results.md, "When the 95% holds"; benchmarks/verdicts.py). Below
    SKEW_FROM seeds it is not applied: three values that are not all equal reach |G1| 1.73 by two
    being equal, the top of what normal ones give."""
    return n >= SKEW_FROM and math.isfinite(skewness) and abs(skewness) > normal_skewness_range(n)


def least_p(pairs: int) -> float:
    """The smallest two-sided p the exact sign-flip test can give at `pairs` seeds: 2 / 2^pairs."""
    return 2.0 ** (1 - pairs) if pairs >= 1 else math.nan
