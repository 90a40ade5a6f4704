""".venv/bin/python benchmarks/verdicts.py [--quick] [--reps 2000]

The confirmation's error rates and seed counts, by simulation (fixed seeds), through the code a
confirmation runs (confirm_stats.compare and judge, sequential.decide):

1. a relative minimum effect ("1%") taken per seed against a noisy default: false "beats" and
   false "equivalent" at a true gain of exactly 1%, at n = 3, 5, 10 and a default sd of 0.1 and
   0.3 of its mean, one config and the chance of any false "beats" among 4 (Holm); beside it the
   old rule (1% of the default's sample mean, then fixed);
2. the seeds estimate for equivalence (TOST's power): the share decided at the estimate;
3. the skew rule: the t interval's coverage and false "beats" at the margin for lognormal
   differences, with and without the rule, and what the rule costs normal differences;
4. --seeds auto (group-sequential, up to 20 seeds): false beats / worse / equivalent at the margin
   with 1 and 4 configs, and the mean seeds against a fixed N of equal power for a clear win, a
   clear tie and an effect near the margin.
tests/ray_jobs/confirmation/test_stats.py and test_sequential.py run the same functions with fewer
repetitions. Nothing starts Ray.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from losstune.ray_jobs.confirmation.stats import compare, judge, power, seeds_needed, t_interval
from losstune.ray_jobs.confirmation.sequential import DEFAULT_MAX_SEEDS, decide, looks


def relative_margin(n: int, default_sd: float, reps: int, configs: int = 1, per_seed: bool = True,
                    seed: int = 0) -> dict[str, float]:
    """Each config truly 1% better than a default of mean 1 and sd `default_sd`, its differences
    tightly paired (sd 0.001): the share of repetitions with a false "beats" (any of the configs) and
    with a false "equivalent". per_seed False: the old rule, 1% of the default's sample mean."""
    rng = np.random.default_rng(seed)
    beats = equivalent = 0
    for _ in range(reps):
        default = rng.normal(1.0, default_sd, n)
        margin = "1%" if per_seed else repr(0.01 * abs(float(default.mean())))
        verdicts = [c.verdict for c in judge([compare(default - 0.01 + rng.normal(0, 0.001, n), default, "min", margin)
                                              for _ in range(configs)])]
        beats += "beats" in verdicts
        equivalent += "equivalent" in verdicts
    return {"false beats": beats / reps, "false equivalent": equivalent / reps}


def decided_at_estimate(gain: float, sd: float, delta: float, reps: int, seed: int = 0) -> tuple[int, float]:
    """(the seeds estimate at a true gain and sd, the share of `reps` confirmations at it that decide)."""
    rng = np.random.default_rng(seed)
    n = seeds_needed(gain, sd, delta)
    decided = sum(judge([compare(-rng.normal(gain, sd, n), np.zeros(n), "min", repr(delta))])[0].verdict
                  != "inconclusive" for _ in range(reps))
    return n, decided / reps


def skewed_at_margin(n: int, sigma: float, reps: int, seed: int = 0) -> dict[str, float]:
    """Gains at the margin 0.1 whose noise is a centred lognormal(0, sigma) with its long tail on the
    worse side (sigma 0: normal): the t interval's coverage of the true difference, false "beats"
    from the t tests alone, and with the skew rule."""
    rng = np.random.default_rng(seed)
    covered = alone = ruled = 0
    for _ in range(reps):
        noise = rng.normal(0, 1, n) if sigma == 0 else -(rng.lognormal(0, sigma, n) - math.exp(sigma ** 2 / 2))
        gains = 0.1 + 0.1 * noise
        low, high = t_interval(-gains)
        covered += low <= -0.1 <= high
        c = judge([compare(1.0 - gains, np.ones(n), "min", "0.1")])[0]
        alone += (c.would_be or c.verdict) == "beats"
        ruled += c.verdict == "beats"
    return {"coverage": covered / reps, "false beats, t alone": alone / reps, "false beats, with the rule": ruled / reps}


def sequential(gain: float, sd: float, delta: float, reps: int, configs: int = 1, max_seeds: int = DEFAULT_MAX_SEEDS,
               seed: int = 0) -> dict[str, float]:
    """`configs` configs, each with true gain `gain` and sd `sd` (absolute margin delta), confirmed
    with --seeds auto up to max_seeds: the share of repetitions with any beats / worse / equivalent,
    each config's mean seeds and the mean runs of the default (seeds until the last was decided)."""
    rng = np.random.default_rng(seed)
    planned = looks(max_seeds)
    counts, seeds, default_seeds = dict.fromkeys(("beats", "worse", "equivalent"), 0), 0.0, 0.0
    for _ in range(reps):
        values = {f"top{k}": 1.0 - rng.normal(gain, sd, max_seeds) for k in range(configs)}
        decisions = decide(values, np.ones(max_seeds), "min", repr(delta), planned)
        for claim in counts:
            counts[claim] += any(d.verdict == claim for d in decisions.values())
        seeds += sum(d.seeds for d in decisions.values()) / configs
        default_seeds += max(d.seeds for d in decisions.values())
    return {**{claim: count / reps for claim, count in counts.items()}, "mean seeds": seeds / reps,
            "default's seeds": default_seeds / reps}


def fixed_n_of_power(gain: float, sd: float, delta: float, target: float) -> int | None:
    """The least fixed N whose power reaches `target` (capped at 0.999): the comparison for --seeds auto."""
    return next((n for n in range(2, 1001) if power(gain, sd, delta, n) >= min(target, 0.999)), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=2000)
    p.add_argument("--quick", action="store_true", help="500 repetitions a cell")
    reps = 500 if p.parse_args().quick else p.parse_args().reps
    print(f"1. a true gain of 1%, --min-effect 1%, {reps} repetitions a cell (at most 0.025 each)")
    for default_sd in (0.1, 0.3):
        for n in (3, 5, 10):
            now, old = relative_margin(n, default_sd, reps), relative_margin(n, default_sd, reps, per_seed=False)
            holm = relative_margin(n, default_sd, reps // 2, configs=4)
            print(f"   default sd {default_sd}, {n:>2} seeds: per seed {fmt(now)}; any of 4 configs beats "
                  f"{holm['false beats']:.3f}   (old rule: {fmt(old)})")
    print("2. equivalence, sd = minimum effect 0.01: decided at the seeds estimate (target 0.75-0.85)")
    for gain in (0.0, 0.002, 0.005):
        n, share = decided_at_estimate(gain, 0.01, 0.01, reps)
        print(f"   true gain {gain}: estimate {n} seeds, decided {share:.3f}")
    print("3. gains at the margin, lognormal noise with its tail on the worse side (sigma 0: normal)")
    for sigma in (0.0, 0.5, 1.0):
        for n in (5, 10, 20):
            print(f"   sigma {sigma}, {n:>2} seeds: {fmt(skewed_at_margin(n, sigma, reps))}")
    print(f"4. --seeds auto up to {DEFAULT_MAX_SEEDS} (looks at {looks(DEFAULT_MAX_SEEDS)}), minimum effect 1, sd 1")
    for configs in (1, 4):
        for label, gain in (("at +margin", 1.0), ("at -margin", -1.0)):
            print(f"   {configs} config(s) {label}: {fmt(sequential(gain, 1.0, 1.0, reps, configs))}")
    for label, gain in (("clear win (gain 3)", 3.0), ("clear tie (gain 0)", 0.0), ("near the margin (gain 1.5)", 1.5)):
        result = sequential(gain, 1.0, 1.0, reps)
        decided = max(result["beats"], result["worse"], result["equivalent"])
        print(f"   {label}: decided {decided:.3f}, mean seeds {result['mean seeds']:.1f}; a fixed N of equal power: "
              f"{fixed_n_of_power(gain, 1.0, 1.0, decided)}")


def fmt(figures: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.3f}" if value < 1.5 else f"{name} {value:.1f}" for name, value in figures.items())


if __name__ == "__main__":
    main()
