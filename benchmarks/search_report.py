"""What search_efficiency prints and draws: each task's summary, the paired lines, the seeds a bound
needs, the share of each branch a method's trials took, the commits the runs were made at, and
the anytime-curve plot."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from losstune.ray_jobs.results.study import space_switches
from search_runs import run_trials
from search_stats import incumbent_at
from search_tasks import TARGET_SPEEDUP, Task


def plot(task_name: str, runs: list[dict], summary: dict, path: str, mode: str = "min") -> None:
    """Anytime curves: median and interquartile band of the incumbent per method, over epochs."""
    # here, not at the top: loads matplotlib only where this runs
    import matplotlib

    matplotlib.use("Agg")
    # here, not at the top: loads matplotlib only where this runs
    import matplotlib.pyplot as plt

    grid = np.arange(1, summary["budget"] + 1)
    worst = math.inf if mode == "min" else -math.inf
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in summary["methods"]:
        curves = np.array([[incumbent_at(r["points"], e) for e in grid] for r in runs if r["method"] == method])
        # a seed with no full-length trial yet counts as the worst, so a quantile shows only once
        # that share of seeds has an incumbent (order statistics: no arithmetic on inf)
        curves[np.isnan(curves)] = worst
        low, mid, high = np.quantile(curves, [0.25, 0.5, 0.75], axis=0, method="inverted_cdf")
        if mode == "max":
            low, high = high, low
        line, = ax.plot(grid, mid, drawstyle="steps-post", label=f"{method} (n={len(curves)})")
        ax.fill_between(grid, low, high, step="post", alpha=0.2, color=line.get_color())
    ax.axhline(summary["target"], color="k", linestyle="--", linewidth=0.8, label="target")
    ax.set(xlabel="epochs spent (stopped trials included)", ylabel="incumbent's full-length objective",
           title=f"{task_name}: anytime curves, median and interquartile band")
    ax.legend()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def print_summary(task_name: str, summary: dict, skipped: dict, epochs: int, startup: int) -> None:
    print(f"{task_name}: target {summary['target']:.5g} (median of random search's best), best found "
          f"{summary['best']:.5g}, budget (random search's spend) median {summary['budget_median']:.0f} epochs, "
          f"at most {summary['budget']}")
    for method, row in summary["methods"].items():
        low, high = row["ci"]
        print(f"  {method:<11} reached the target on {row['reached']} of {row['seeds']} seeds; speed-up over random "
              f"{row['speedup']:.2f}x [95% CI {low:.2f}, {high:.2f}] in epochs, {row['speedup_slot_s']:.2f}x in "
              f"slot seconds; final regret median {row['regret_median']:.4g} "
              f"(IQR {row['regret_iqr'][0]:.4g}-{row['regret_iqr'][1]:.4g})", flush=True)
    for method, row in summary["methods"].items():
        if row["paired"]["seeds"]:
            print(paired_line(method, row["paired"]))
    for method, why in skipped.items():
        print(f"  {method:<11} not run: {why}")
    print(needed_line(summary["needed"], epochs, startup, summary["seeds_for_a_bound"],
                      summary["methods"]["random"]["seeds"]))


def paired_line(method: str, paired: dict) -> str:
    low, high = paired["ci"]
    return (f"  {method:<11} minus random at random search's spend, paired by seed: median {paired['median']:+.4g} "
            f"[95% CI {low:+.4g}, {high:+.4g}], better at {paired['better']} of {paired['seeds']} seeds, "
            f"Wilcoxon p {paired['p']:.2g}")


def needed_line(needed: float, epochs: int, startup: int, seeds_for_bound: int, seeds: int) -> str:
    """What the target speed-up asks, against what a model-based method spends before its model's
    first trial (the default's full length and its random startup trials), and on how many seeds
    the target must be reached at all for the interval's lower bound to leave 0."""
    return (f"  a {TARGET_SPEEDUP:g}x speed-up needs the target within {needed:.0f} epochs on half the seeds "
            f"({needed / epochs:.1f} full-length trials); TPE, GP and CMA-ES first train the default "
            f"({epochs} epochs) and {startup} random trials. A CI above 0 needs the target reached on "
            f"{seeds_for_bound} of {seeds} seeds, however fast")


def branch_lines(task: Task, runs: list[dict], folder: str, metric: str, mode: str) -> list[str]:
    """Per switch of the task's space (hdr_patch's caps/mode), per method: the median share over
    seeds of its trials drawn in each branch, and at how many seeds its best full-length trial lay
    in each. A search that models the objective can settle on one branch; this says whether it did
    and whether the best was elsewhere. Read from each kept sweep's Tune folder."""
    switches = space_switches({"family": task.family, "space": task.space})
    trials = {(run["method"], run["seed"]): run_trials(task, run, folder, metric) for run in runs} if switches else {}
    pick = min if mode == "min" else max
    lines = []
    for name, values in switches.items():
        lines.append(f"  branches of {name} (the share of the trials that reported, median (range) over seeds; at "
                     "how many seeds the best full-length trial lay in each):")
        for method in dict.fromkeys(r["method"] for r in runs):
            kept = [r for r in runs if r["method"] == method]
            shares, best_in = {v: [] for v in values}, Counter()
            for run in kept:
                drawn = [config.get(name) for config, _ in trials[(method, run["seed"])]]
                for value in values:
                    shares[value].append(drawn.count(value) / max(len(drawn), 1))
                full = [(value, config) for config, value in trials[(method, run["seed"])] if value is not None]
                if full:
                    best_in[pick(full, key=lambda f: f[0])[1].get(name)] += 1
            split = ", ".join(f"{v} {np.median(shares[v]):.0%} ({min(shares[v]):.0%}-{max(shares[v]):.0%})"
                              for v in values)
            where = ", ".join(f"{v} at {best_in[v]}" for v in values)
            lines.append(f"    {method:<14} {split}; best in {where} of {len(kept)} seeds")
    return lines


def commits(runs: list[dict]) -> str:
    """'abc1234 (12), not recorded (30)': which code the kept runs come from, `+` where it had
    uncommitted changes."""
    counts = Counter(r["commit"][:7] + ("+" if r.get("dirty") else "") if r.get("commit") else "not recorded"
                     for r in runs)
    return ", ".join(f"{commit} ({n})" for commit, n in counts.most_common())
