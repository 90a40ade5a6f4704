"""python benchmarks/regret_intervals.py [--task hdr_caps] [--seeds 100] [--n 20] [--draws 4000]

Whether the replay's paired intervals on normalised regret (search_regret.paired_regret: Student
t 95% of the mean difference over seeds) and its median interval (order statistics) cover at the
protocol's 20 seeds, under the noise regret really has: bounded, skewed, often exactly 0 or 1.
Random search and TPE + ASHA are replayed at `--seeds` seeds against one task's record (the
cheapest pair: a second a sweep); that set stands for the population. Sets of `--n` seeds are drawn
from it with replacement, and each interval is checked against the population's mean difference
and median. Prints the coverage at each share of the budget with its Monte Carlo standard error.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from search_regret import BUDGET_SHARES, SHARE_NAMES, median_interval, paired_differences
from search_replay import read_landscapes, regret_table, replay_protocol
from search_tasks import TASKS
from losstune.ray_jobs.confirmation.stats import t_interval
from losstune.trainables.registry import load_family

PAIR = ("tpe-asha", "random")  # the difference checked: TPE + ASHA minus random search


def coverage(values: np.ndarray, n: int, draws: int, interval, truth: float, rng) -> tuple[float, float]:
    """Share of `draws` sets of `n` values (drawn with replacement) whose interval holds `truth`, with
    its Monte Carlo standard error."""
    held = []
    for _ in range(draws):
        low, high = interval(rng.choice(values, size=n, replace=True))
        held.append(low <= truth <= high)
    share = float(np.mean(held))
    return share, math.sqrt(share * (1 - share) / draws)


def coverage_lines(table: dict, n: int, draws: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    ours, theirs = (table[m] for m in PAIR)
    lines = []
    for share, name in zip(BUDGET_SHARES, SHARE_NAMES):
        diffs = paired_differences(ours[share], theirs[share])
        alone = np.array([v for v in ours[share].values() if not math.isnan(v)])
        t_cover, t_se = coverage(diffs, n, draws, t_interval, float(diffs.mean()), rng)
        m_cover, m_se = coverage(alone, n, draws, median_interval, float(np.median(alone)), rng)
        lines.append(f"  {name}: {PAIR[0]} - {PAIR[1]} population mean {diffs.mean():+.3f} (sd {diffs.std(ddof=1):.3f}, "
                     f"{(diffs == 0).mean():.0%} exactly 0; N {len(diffs)}): t 95% interval at n {n} covers "
                     f"{t_cover:.1%} +- {t_se:.1%}; {PAIR[0]}'s median interval covers {m_cover:.1%} +- {m_se:.1%}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=sorted(TASKS), default="hdr_caps")
    p.add_argument("--landscapes", default="benchmarks/landscapes", help="the folder of the records")
    p.add_argument("--seeds", type=int, default=100, help="the population: seeds replayed")
    p.add_argument("--n", type=int, default=20, help="seeds in each drawn set (the protocol's)")
    p.add_argument("--draws", type=int, default=4000)
    p.add_argument("--trials", type=int, default=32, help="random search's trials (search_efficiency's default)")
    p.add_argument("--processes", type=int, default=1)
    args = p.parse_args(argv)
    if args.n < 2 or args.seeds < args.n:
        print(f"regret_intervals: --n must be at least 2 and at most --seeds ({args.seeds})", file=sys.stderr)
        return 2
    runs = replay_protocol(read_landscapes([args.task], args.landscapes), args.seeds, PAIR[::-1], args.trials,
                           args.processes)[args.task]
    table, _ = regret_table(runs, load_family(TASKS[args.task].family).objective.mode)
    print(f"{args.task}: coverage of the replay's intervals, sets of {args.n} seeds drawn from {args.seeds} "
          f"replayed ({args.draws} draws):")
    print("\n".join(coverage_lines(table, args.n, args.draws)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
