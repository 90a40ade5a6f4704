"""search_efficiency's headline statistics: the anytime incumbent of a run, the compute each run
needed to reach a target (censored where it never did), the speed-up over random search as a
ratio of censored medians with a bootstrap interval over seeds, and the paired comparison at
equal compute."""

from __future__ import annotations

import math

import numpy as np

from search_tasks import TARGET_SPEEDUP


def better(a: float, b: float, mode: str) -> bool:
    return a < b if mode == "min" else a > b


def compute_to_target(points: list, target: float, mode: str, column: int = 0) -> float:
    """The compute (column 0: epochs, 1: slot seconds) at which the incumbent first reached
    `target`; inf where it never did (censored)."""
    for point in points:
        if not math.isnan(point[2]) and not better(target, point[2], mode):
            return float(point[column])
    return math.inf


def censored_median(times) -> float:
    """The compute by which half the seeds reached the target: the ceil(n/2)-th smallest time
    (inf where fewer than half got there), the Kaplan-Meier median when every censoring is at the end."""
    ordered = sorted(times)
    return float(ordered[math.ceil(len(ordered) / 2) - 1])


def speedup(random_times, method_times) -> float:
    """Random search's censored median over the method's: >1, the method gets there faster."""
    r, m = censored_median(random_times), censored_median(method_times)
    if math.isinf(r) and math.isinf(m):
        return math.nan
    return r / m if m > 0 else math.inf


def bootstrap_ci(random_times, method_times, draws: int = 10000, seed: int = 0) -> tuple[float, float]:
    """A 95% percentile interval of `speedup`, seeds resampled with replacement on both sides
    (draws where neither reaches the target left out); inf bounds stay inf."""
    rng = np.random.default_rng(seed)
    random_times, method_times = np.asarray(random_times, float), np.asarray(method_times, float)
    values = [speedup(rng.choice(random_times, len(random_times)), rng.choice(method_times, len(method_times)))
              for _ in range(draws)]
    values = np.sort([v for v in values if not math.isnan(v)])
    if not len(values):
        return math.nan, math.nan
    # order statistics, not interpolation, which inf values would turn into nan
    return float(values[int(0.025 * (len(values) - 1))]), float(values[int(math.ceil(0.975 * (len(values) - 1)))])


def incumbent_at(points: list, epochs: int) -> float:
    """The incumbent after `epochs` epochs were spent (nan before any trial ran every epoch)."""
    value = math.nan
    for point in points:
        if point[0] > epochs:
            break
        value = point[2]
    return value


def regret_at(points: list, epochs: int, best: float) -> float:
    return abs(incumbent_at(points, epochs) - best)


def paired_at_equal_compute(method_runs: list[dict], budget: dict, random_runs: list[dict], mode: str,
                            draws: int = 10000, seed: int = 0) -> dict:
    """The method's incumbent minus random search's, each at what random search spent at that seed,
    paired by seed (seeds where either has no full-length trial yet left out): the median
    difference with a 95% percentile bootstrap interval over seeds, the seeds where the method is
    better, and Wilcoxon's signed-rank p."""
    # here, not at the top: loads scipy only where this runs
    from scipy.stats import wilcoxon

    random_at = {r["seed"]: incumbent_at(r["points"], budget[r["seed"]]) for r in random_runs}
    differences = np.array([incumbent_at(r["points"], budget[r["seed"]]) - random_at[r["seed"]]
                            for r in method_runs if r["seed"] in random_at])
    differences = differences[~np.isnan(differences)]
    if not len(differences):
        return {"seeds": 0}
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(differences, (draws, len(differences))), axis=1)
    better = int(((differences < 0) if mode == "min" else (differences > 0)).sum())
    p = float(wilcoxon(differences).pvalue) if np.any(differences != 0) else 1.0
    return {"seeds": len(differences), "median": float(np.median(differences)), "better": better, "p": p,
            "ci": tuple(float(q) for q in np.percentile(medians, [2.5, 97.5]))}


def summarise(runs: list[dict], mode: str) -> dict:
    """The protocol's figures for one task: the target, and per method the share of seeds that
    reach it, the speed-up over random search (epochs and slot seconds) with its bootstrap CI, and
    the final regret at equal compute."""
    by_method: dict[str, list] = {}
    for run in runs:
        by_method.setdefault(run["method"], []).append(run)
    random_finals = [r["points"][-1][2] for r in by_method["random"]]  # nan: no healthy full-length trial
    target = float(np.nanmedian(random_finals))
    budget = {r["seed"]: spent(r) for r in by_method["random"]}  # per seed: what random search spent
    finals = [p[2] for r in runs for p in r["points"] if not math.isnan(p[2])]
    best = min(finals) if mode == "min" else max(finals)
    times = {m: [compute_to_target(r["points"], target, mode) for r in rs] for m, rs in by_method.items()}
    slots = {m: [compute_to_target(r["points"], target, mode, 1) for r in rs] for m, rs in by_method.items()}
    rows = {}
    for method, method_runs in by_method.items():
        regrets = [regret_at(r["points"], budget[r["seed"]], best) for r in method_runs if r["seed"] in budget]
        rows[method] = {"seeds": len(method_runs), "reached": sum(not math.isinf(t) for t in times[method]),
                        "speedup": speedup(times["random"], times[method]),
                        "ci": bootstrap_ci(times["random"], times[method]),
                        "speedup_slot_s": speedup(slots["random"], slots[method]),
                        "regret_median": float(np.nanmedian(regrets)),
                        "regret_iqr": tuple(float(q) for q in np.nanpercentile(regrets, [25, 75])),
                        "paired": ({"seeds": 0} if method == "random" else
                                   paired_at_equal_compute(method_runs, budget, by_method["random"], mode))}
    return {"target": target, "best": best, "budget": max(budget.values()),
            "budget_median": float(np.median(list(budget.values()))), "methods": rows,
            # the compute by which a method must reach the target on half its seeds for the target speed-up
            "needed": censored_median(times["random"]) / TARGET_SPEEDUP,
            "seeds_for_a_bound": seeds_for_a_bound(times["random"])}


def seeds_for_a_bound(random_times) -> int:
    """The fewest seeds a method must reach the target on (at once, the best case) for the bootstrap
    interval's lower bound to be above 0: below that, enough resamples leave its median censored."""
    n = len(random_times)
    for reached in range(math.ceil(n / 2), n):
        if bootstrap_ci(random_times, [1.0] * reached + [math.inf] * (n - reached), draws=2000)[0] > 0:
            return reached
    return n  # at every seed no resample is censored


def seed_agreement(a, b, mode: str = "min") -> dict:
    """The same configs trained at two training seeds (trials tables `a`, `b`, matched by Tune's
    launch order, which random search with one sampler seed repeats): how much of the spread
    between configs is the training seed's. Spearman of their best objectives; where `a`'s best
    config ranks in `b` (1 = best); the median spread between configs (median - best) and the
    median change of one config's distance from its seed's median (a seed that moves every config
    alike, e.g. through its data, changes no ranking)."""
    a, b = (table.set_index("trial_index").sort_index() for table in (a, b))
    for column in [c for c in a.columns if c.startswith("config/") and c != "config/train/seed"]:
        if not a[column].equals(b[column]):  # not the same configs: the figures would mean nothing
            raise ValueError(f"{column}: the two runs did not sample the same configs in the same order")
    pair = a.join(b, lsuffix="_a", rsuffix="_b").dropna(subset=["best_objective_a", "best_objective_b"])
    sign = 1.0 if mode == "min" else -1.0  # below, smaller is better
    x, y = sign * pair["best_objective_a"], sign * pair["best_objective_b"]
    return {"configs": len(pair), "spearman": float(x.rank().corr(y.rank())),
            "a_best_rank_in_b": int(y.rank()[x.idxmin()]),
            "spread": float(x.median() - x.min()),
            "seed_change": float(((x - x.median()) - (y - y.median())).abs().median())}


def spent(run: dict) -> int:
    """The epochs a run spent (its last point's count)."""
    return int(run["points"][-1][0]) if run["points"] else 0
