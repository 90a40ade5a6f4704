"""A confirmation that stops when it has decided (--seeds auto): its looks, boundaries and decisions.

A fixed number of seeds is chosen before anyone knows the spread: a clear win pays for seeds it
did not need, and an effect near the margin ends "inconclusive" and starts again. Here seeds are
added in rounds, 3 and then 2 at a time up to --max-seeds, and after each round (a "look") every
undecided config is tested again; the confirmation stops once every config is decided.

Testing after every round would spend the 2.5% of each one-sided test many times over, so each
look gets a share of it (Hwang, Shih and DeCani's spending function with gamma -2, between
Pocock's, which stops clear wins earliest but loses most power at the last look, and O'Brien and
Fleming's, which cannot stop before 9 seeds at a maximum of 20), and the boundary a t statistic must cross at a look is computed so
that the chance of crossing at any look, when the truth sits exactly on the margin, is 2.5%. The t
statistic of normal differences at the margin does not depend on their spread, so the boundaries
are simulated once (seeded) for the looks. Each claim is the fixed-N test of confirm_stats on the
seeds so far: "beats" crosses the boundary in t(gain_i - m_i), "worse" in -t(gain_i + m_i),
"equivalent" in both of t(gain_i + m_i) and -t(gain_i - m_i) (TOST). Over several configs, Holm's
step-down runs at each look (the graphical procedure of Maurer and Bretz 2013): a claim is tested
at 2.5% / (configs where it is still open), a level that grows as others are decided.
The interval said with a verdict is the repeated confidence interval at the look where it stopped
(the boundary in place of Student's t quantile): valid whenever the confirmation stops.
Simulated error rates and seeds saved: benchmarks/verdicts.py, benchmarks/history.md.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np

from losstune.ray_jobs.confirmation.small_samples import skewness_of, too_skewed
from losstune.ray_jobs.confirmation.stats import ALPHA, Comparison, margins_of

FIRST_LOOK, STEP, DEFAULT_MAX_SEEDS = 3, 2, 20
GAMMA = -2.0  # the spending function's shape: benchmarks/verdicts.py compares it with Pocock's and OBF's
PATHS = 200_000  # simulated confirmations behind the boundaries: their 2.5% is right to about 0.0004
CLAIMS = ("beats", "worse", "equivalent")


def looks(max_seeds: int) -> tuple[int, ...]:
    """The seeds at each look: 3, 5, 7, ... and max_seeds last."""
    planned = list(range(FIRST_LOOK, max_seeds + 1, STEP))
    return tuple(planned if planned[-1] == max_seeds else [*planned, max_seeds])


def spent(fraction: float, alpha: float = ALPHA) -> float:
    """The one-sided alpha spent by this fraction of the seeds (Hwang-Shih-DeCani, gamma GAMMA)."""
    return alpha * (1 - math.exp(-GAMMA * fraction)) / (1 - math.exp(-GAMMA))


@functools.cache
def boundaries(planned: tuple[int, ...], alpha: float = ALPHA) -> tuple[float, ...]:
    """The t statistic each look must exceed, so that at a true effect on the margin the chance of
    crossing at any look is `alpha`; inf where a look spends less than one simulated path."""
    normal = np.random.default_rng(0).standard_normal((PATHS, planned[-1]))
    open_paths, critical, before = np.ones(PATHS, bool), [], 0.0
    for n in planned:
        sample = normal[:, :n]
        t = sample.mean(axis=1) / (sample.std(axis=1, ddof=1) / math.sqrt(n))
        crossings = int(round((spent(n / planned[-1], alpha) - before) * PATHS))
        before = spent(n / planned[-1], alpha)
        if crossings < 1:
            critical.append(math.inf)
            continue
        candidates = np.sort(t[open_paths])[::-1]
        critical.append(float(candidates[crossings]))  # the crossings largest lie above it
        open_paths &= t <= critical[-1]
    return tuple(critical)


def t_statistic(values: np.ndarray) -> float:
    """mean / standard error; +-inf where every value is the same and not 0."""
    sem = float(np.std(values, ddof=1)) / math.sqrt(len(values))
    mean = float(np.mean(values))
    return mean / sem if sem > 0 else math.copysign(math.inf, mean) if mean else 0.0


def claim_statistics(config, default, mode: str, min_effect: str) -> dict[str, float]:
    """Per claim, the t statistic that must exceed the boundary (pairs with a value not finite left
    out); NaN below 2 pairs, and for every claim where the gains are too skewed for a t test."""
    config, default = np.asarray(config, float), np.asarray(default, float)
    finite = np.isfinite(config) & np.isfinite(default)
    config, default = config[finite], default[finite]
    if len(config) < 2:
        return dict.fromkeys(CLAIMS, math.nan)
    gains = (config - default) * (1.0 if mode == "max" else -1.0)
    margins = margins_of(min_effect, default)
    if too_skewed(skewness_of(gains), len(gains)):
        return dict.fromkeys(CLAIMS, math.nan)
    above, below = t_statistic(gains - margins), t_statistic(gains + margins)
    return {"beats": above, "worse": -below, "equivalent": min(below, -above)}


@dataclass(frozen=True)
class Decision:
    verdict: str  # beats / worse / equivalent, or "" while undecided
    seeds: int  # the look it was decided at, or the last look taken
    critical: float  # the boundary at that look (single config, 2.5%): the repeated interval's quantile


def decide(values: dict[str, np.ndarray], default: np.ndarray, mode: str, min_effect: str,
           planned: tuple[int, ...]) -> dict[str, Decision]:
    """Each config's decision after the looks its values reach (values in seed order, the default's
    at the same seeds; a config stops getting seeds once decided, so it may have fewer).
    Holm over the configs at each look, per claim."""
    open_claims = {claim: set(values) for claim in CLAIMS}  # hypotheses not yet rejected
    decided: dict[str, Decision] = {}
    single = boundaries(planned)
    for k, n in enumerate(planned):
        live = [name for name in values if name not in decided and len(values[name]) >= n]
        if not live:
            break
        statistics = {name: claim_statistics(values[name][:n], default[:n], mode, min_effect) for name in live}
        for claim in CLAIMS:
            ranked = sorted((s[claim], name) for name, s in statistics.items() if math.isfinite(s[claim])
                            or s[claim] == math.inf)[::-1]
            for statistic, name in ranked:
                if name in decided:  # by another claim at this look
                    continue
                if not statistic > boundaries(planned, ALPHA / len(open_claims[claim]))[k]:
                    break  # Holm: the rest, with smaller statistics, fail too
                open_claims[claim].discard(name)
                decided[name] = Decision(claim, n, single[k])
    last = {name: max((n for n in planned if n <= len(v)), default=0) for name, v in values.items()}
    return {name: decided.get(name, Decision("", last[name], single[planned.index(last[name])] if last[name] else
                                             math.nan)) for name in values}


def repeated_interval(diffs, critical: float) -> tuple[float, float]:
    """The repeated confidence interval of the mean difference at a look: mean +- boundary * sem."""
    diffs = np.asarray(diffs, float)
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) < 2 or not math.isfinite(critical):
        return -math.inf, math.inf
    half = critical * float(diffs.std(ddof=1)) / math.sqrt(len(diffs))
    return float(diffs.mean()) - half, float(diffs.mean()) + half


def applied(c: Comparison, decision: Decision, diffs) -> Comparison:
    """A config's fixed-N comparison with its group-sequential verdict and repeated interval."""
    low, high = repeated_interval(diffs, decision.critical)
    return replace(c, verdict=decision.verdict or "inconclusive", p_verdict=math.nan, ci_low=low, ci_high=high,
                   seeds_needed=None, would_be="", decided_at=decision.seeds)
