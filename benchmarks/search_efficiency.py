"""python benchmarks/search_efficiency.py [--tasks hdr_caps lc_weights] [--methods random tpe-asha] [--seeds 10] [--quick] [--folder DIR] [--summary-only]

Does a search method reach a good setting with less compute than random search? The protocol of
the HPO literature, per task and method, over --seeds seeds (sampler seed s; training seed s for
every method, so seed s's methods train the same configs alike):
  - Budget: what random search's --trials trials (32) spent at that seed, B, in epochs counted as
    Tune receives them (trials its health checks stopped spend only the epochs they ran). Every
    other method at that seed runs until it has spent B epochs (stopped trials' epochs included);
    compute is also counted in trial-slot seconds (each trial's time_total_s, start-up included).
  - Anytime curve: after each reported epoch, the incumbent's full-length objective: the best
    final value of the trials that have run every epoch so far (a stopped trial has none).
  - Target: the median over random-search seeds of random search's best of --trials. Per seed,
    the compute to reach it (censored, inf, where it never does).
  - Headline: the speed-up over random search, the ratio of the censored medians of the compute to
    the target (random / method; the median is the compute by which half the seeds got there), with
    a bootstrap 95% CI over seeds, and the share of seeds that reach the target; beside it the final
    regret at equal compute (incumbent at B minus the best any run found on the task), median and
    interquartile range, and each method's incumbent at B minus random search's, paired by seed
    (median, bootstrap 95% CI, the seeds where it is better, Wilcoxon's p). One plot per task:
    anytime curves, median and interquartile band per method.
Target to report against: a median speed-up >= 3x with the CI's lower bound above 1 on at least
two tasks. GP and CMA-ES run only on tasks whose space is continuous, PBT and PB2 only on spaces of
distributions, not define-by-run ones (losstune-sweep refuses the others; the line says so). PBT's
and PB2's population is as many full-length trials as B affords (B // epochs), each to the end.
--seed-noise checks a task first: see seed_agreement.
The full protocol takes many hours on 2 cores. With --folder, each finished sweep's curve is kept
there (TASK/METHOD-SEED.json, with the flags it ran with), and a later run with the same folder
runs only the sweeps it lacks (a sweep it was stopped in runs again from the start): the protocol
can be run a few hours at a time. Seeds go in the outer loop, so an interrupted run leaves every
method at the same seeds. --summary-only prints the figures of what the folder holds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from ray.tune import Stopper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import REPO, machine, run_sweep, scratch, start_local_ray  # noqa: E402
from losstune.ray_jobs.core.provenance import git_state
from losstune.ray_jobs.core.usage import UsageError
from losstune.ray_jobs.results.study import space_switches
from losstune.trainables.config import flatten
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family


@dataclass(frozen=True)
class Task:
    family: str
    space: str
    flags: tuple = ()


# latent_conditioner's default size (256x256, 5.6 s a step here) would take days for 32 full-length
# trials on 2 cores: its smoke model on 1,024 synthetic 32x32 images, 10 epochs, `small_dataset`
# (every enhancement on, so the searched weights act) and lr 1e-3 (at the seed's 1e-4 every trial tied).
SMALL_LC = ("--preset", "small_dataset", "--smoke-test", "--epochs", "10", "--set", "data.num_train=1024",
            "--set", "data.num_val=64", "--set", "optim.lr=1e-3")
# hdr_patch's ASHA waits 5 of its 10 epochs, as the sweep's report advises there: over random
# search's trials that ran every epoch (seeds 0 and 1, 28 each, 2026-11-26) epoch 2 ranks them
# against their final values with Spearman 0.67 and 0.82, epoch 5 with 0.93 and 0.97; at the
# default grace (2) ASHA stopped every Mode B trial, the mode of random search's best, at epoch 2
HDR_GRACE = ("--grace-epochs", "5")
# lgt's smoke flow on 128 latents with the stratified SWD, over its `schedule` space (lr, clipping,
# warmup, floor). At the smoke defaults (32 latents, the seed's pooled SWD) the flow stays the
# identity: both trials of a 2-trial probe stopped as identity_mapping at epoch 4 (ratio 0.9945).
# Not the `weights` space: val/energy adds style and content 1:1, the trade-off the default weights
# train for, and Adam all but ignores the common scale, so the default is near the best by
# construction (2nd of random search's 32 at seed 0, 0.1978 against 0.1968 with lr 1e-3). Over
# `schedule` the default (lr 1e-4) ends at 0.516 and a random schedule at 0.449 (2026-11-26);
# the space is continuous, so every method runs on it.
SMALL_LGT = ("--smoke-test", "--epochs", "10", "--set", "data.num_train=128", "--set", "loss.stratified=true")
TASKS = {
    "hdr_caps": Task("hdr_patch", "caps", HDR_GRACE),
    "hdr_all": Task("hdr_patch", "all", HDR_GRACE),
    "lc_weights": Task("latent_conditioner", "weights", SMALL_LC),
    # lgt's scalar objective (val/energy), not its Pareto pair: one number to rank by
    "lgt_energy": Task("lgt", "schedule", ("--objective", "scalar", *SMALL_LGT)),
}
# each method's sweep flags; the model-based ones with the sweep's ASHA or HyperBand (grace:
# --grace-epochs), PBT / PB2 from a random population (perturbation interval: --grace-epochs)
METHODS = {
    "random": ("--search", "random", "--scheduler", "none"),
    # TPE + ASHA, its start-up trials spread over each choice's values (the sweep's default since
    # 2026-11-28, ray_jobs/search/branch_fair.py); tpe-coin-asha: each drawn by a coin, as Optuna does (the
    # default before, which drew hdr_patch's cap mode A in a median 86-92% of its trials)
    "tpe-asha": ("--search", "optuna", "--scheduler", "asha", "--startup", "fair"),
    "tpe-coin-asha": ("--search", "optuna", "--scheduler", "asha", "--startup", "random"),
    # piBO through SMAC3, its prior at the documented default (ray_jobs/search/prior_search.py), with ASHA
    "prior-asha": ("--search", "prior", "--scheduler", "asha"),
    # TPE + ASHA with twice the random start-up trials: on hdr_patch `all` TPE drew Mode A in 85-97%
    # of its trials after 4 start-up trials whose Mode B draws had low learning rates (2026-11-27)
    "tpe8-asha": ("--search", "optuna", "--scheduler", "asha", "--startup-trials", "8", "--startup", "random"),
    "gp-asha": ("--search", "gp", "--scheduler", "asha"),
    "cmaes-asha": ("--search", "cmaes", "--scheduler", "asha"),
    "tpe-hyperband": ("--search", "optuna", "--scheduler", "hyperband"),
    "pbt": ("--search", "random", "--scheduler", "pbt"),
    "pb2": ("--search", "random", "--scheduler", "pb2"),
}
POPULATION = ("pbt", "pb2")  # a population of random search's size, run to the end: no more trials asked
# TPE's, GP's and CMA-ES's random startup trials: what the sweep gives a 16-trial sweep (a quarter)
STARTUP_TRIALS = 4
TARGET_SPEEDUP = 3.0  # issue 37's target: the median speed-up over random search to report against
SAMPLER_SEED_OFFSET = 1000  # else a model's random startup trials would replay random search's first points
# the protocol end to end in under 15 minutes on 2 cores (a check that it runs, not a comparison:
# 3 seeds and 5 trials separate nothing): 12 sweeps of 5 x 4 epochs of a smaller lc_weights task,
# one method of each kind (all seven took 21.5 min); --methods picks others
QUICK = {"tasks": ["lc_weights"], "seeds": 3, "trials": 5, "startup": 2,
         "methods": ["random", "tpe-asha", "tpe-hyperband", "pbt"],
         "flags": ("--smoke-test", "--epochs", "4", "--set", "data.num_train=256")}


@dataclass
class Recorder(Stopper):
    """A Tune Stopper that logs every reported epoch in arrival order, as (epochs spent, trial-slot
    seconds spent, the incumbent's full-length objective after it), and stops the sweep at `budget`
    epochs."""

    metric: str
    mode: str
    full_length: int
    budget: int
    points: list = field(default_factory=list)  # (epochs, slot_s, incumbent)
    slot_s: dict = field(default_factory=dict)  # trial id: its time_total_s so far
    incumbent: float = math.nan
    default_point: dict = field(default_factory=dict)  # {"loss/weights/main": 10.0, ...}: the sweep's first trial
    default: float = math.nan  # its full-length value

    def __call__(self, trial_id, result) -> bool:
        self.slot_s[trial_id] = result.get("time_total_s", 0.0)
        value = result.get(self.metric)
        final = result.get("epoch") == self.full_length and not result.get("stop_reason") and value is not None
        if final and (math.isnan(self.incumbent) or better(value, self.incumbent, self.mode)):
            self.incumbent = float(value)
        if final and self.default_point and is_point(result.get("config", {}), self.default_point):
            self.default = float(value)
        self.points.append((len(self.points) + 1, sum(self.slot_s.values()), self.incumbent))
        return False

    def stop_all(self) -> bool:
        return len(self.points) >= self.budget


def is_point(config: dict, point: dict) -> bool:
    """Whether a trial's nested config holds the flat point's values ("caps/mode": "A")."""
    flat = flatten(config)
    return all(flat.get(key) == value for key, value in point.items())


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


# --- regret at each budget (issue 60): how close to the best known each method is, per seed ---------

BUDGET_SHARES = (1 / 8, 1 / 4, 1 / 2, 1.0)  # of what random search spent at the seed
SHARE_NAMES = ("1/8", "1/4", "1/2", "all")


def normalised_regret(incumbent: float, default: float, best: float) -> float:
    """(incumbent - best known) / (documented default - best known): 1 is no better than the default,
    0 the best any run of any method reached (the same formula for a maximised objective). Before a
    method has a full-length trial it has only the default to offer: 1. NaN where the default is the
    best known (nothing to gain) or unknown."""
    if math.isnan(default) or default == best:
        return math.nan
    return 1.0 if math.isnan(incumbent) else (incumbent - best) / (default - best)


def median_interval(values, level: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval of the median from order statistics (the binomial's, exact
    coverage >= level at any n): at 10 seeds the 2nd and 9th smallest (97.9%); NaN below 6 values,
    where [min, max] covers less than 95%."""
    # here, not at the top: loads scipy only where this runs
    from scipy.stats import binom

    x = np.sort(np.asarray([v for v in values if not math.isnan(v)], dtype=float))
    k = int(binom.ppf((1 - level) / 2, len(x), 0.5)) if len(x) else 0
    if k < 1:
        return math.nan, math.nan
    return float(x[k - 1]), float(x[len(x) - k])


def regrets(runs: list[dict], best: float) -> dict:
    """{method: {share: {seed: normalised regret of its incumbent at that share of random search's
    spend at the seed}}}; the default's value is random search's default trial at the seed (every
    method trains it alike, at the seed's training seed)."""
    random_runs = {r["seed"]: r for r in runs if r["method"] == "random"}
    out: dict = {}
    for run in runs:
        reference = random_runs.get(run["seed"])
        if reference is None:
            continue
        default = reference.get("default", math.nan)
        for share in BUDGET_SHARES:
            at = incumbent_at(run["points"], int(round(share * spent(reference))))
            out.setdefault(run["method"], {}).setdefault(share, {})[run["seed"]] = normalised_regret(at, default, best)
    return out


def paired_regret(ours: dict, theirs: dict) -> dict:
    """Our regret minus theirs, paired by seed (seeds where both are known): the mean difference with
    the platform's paired Student t 95% interval and exact sign-flip p (ray_jobs/confirmation/stats.py),
    and at how many seeds ours is lower."""
    # here, not at the top: loads scipy only where this runs
    from losstune.ray_jobs.confirmation.stats import sign_flip_p, t_interval

    seeds = [s for s in ours if s in theirs and not math.isnan(ours[s]) and not math.isnan(theirs[s])]
    diffs = np.array([ours[s] - theirs[s] for s in seeds])
    if len(diffs) < 2:
        return {"seeds": len(diffs)}
    return {"seeds": len(diffs), "mean": float(diffs.mean()), "ci": t_interval(diffs), "p": sign_flip_p(diffs),
            "lower": int((diffs < 0).sum())}


def regret_lines(task_name: str, table: dict) -> list[str]:
    """The regret table: per method and budget the median [order-statistic interval] (N seeds), then
    each method minus random search and minus TPE + ASHA, paired by seed, and the issue's targets."""
    lines = [f"{task_name}: normalised regret (1 = no better than the documented default, 0 = the best any run "
             f"reached), median [95% interval] (seeds) at {', '.join(SHARE_NAMES)} of random search's spend:"]
    for method, by_share in table.items():
        cells = []
        for share in BUDGET_SHARES:
            values = [v for v in by_share[share].values() if not math.isnan(v)]
            low, high = median_interval(values)
            cells.append(f"{np.median(values) if values else math.nan:.3f} [{low:.3f}, {high:.3f}] ({len(values)})")
        lines.append(f"  {method:<14} " + "; ".join(cells))
    for reference in ("random", "tpe-asha"):
        if reference not in table:
            continue
        lines.append(f"  minus {reference}, paired by seed: mean [95% t interval], exact sign-flip p, seeds lower:")
        for method in (m for m in table if m != reference):
            cells = []
            for share, name in zip(BUDGET_SHARES, SHARE_NAMES):
                d = paired_regret(table[method][share], table[reference][share])
                cells.append(f"{name} {d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] p {d['p']:.2g} "
                             f"{d['lower']}/{d['seeds']}" if d["seeds"] >= 2 else f"{name} -")
            lines.append(f"    {method:<12} " + "; ".join(cells))
    lines += target_lines(table)
    return lines


def target_lines(table: dict) -> list[str]:
    """Issue 60's targets for the prior-guided search: at 1/4 of random search's budget a median
    regret no worse than random search's at all of it; at no budget worse than TPE + ASHA beyond
    its interval (the paired interval wholly above 0)."""
    if "prior-asha" not in table:
        return []
    prior = [v for v in table["prior-asha"][1 / 4].values() if not math.isnan(v)]
    full = [v for v in table["random"][1.0].values() if not math.isnan(v)]
    lines = [f"  target: prior-asha at 1/4 {np.median(prior):.3f} against random at all {np.median(full):.3f}: "
             f"{'met' if np.median(prior) <= np.median(full) else 'not met'}"]
    if "tpe-asha" in table:
        worse = [name for share, name in zip(BUDGET_SHARES, SHARE_NAMES)
                 if (d := paired_regret(table["prior-asha"][share], table["tpe-asha"][share]))["seeds"] >= 2
                 and d["ci"][0] > 0]
        lines.append("  target: prior-asha not worse than tpe-asha beyond the interval at any budget: " +
                     (f"not met (worse at {', '.join(worse)})" if worse else "met"))
    return lines


def plot_regret(task_name: str, table: dict, path: str) -> None:
    """Median normalised regret per method against the share of random search's spend."""
    # here, not at the top: loads matplotlib only where this runs
    import matplotlib

    matplotlib.use("Agg")
    # here, not at the top: loads matplotlib only where this runs
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, by_share in table.items():
        medians = [np.nanmedian(list(by_share[s].values())) for s in BUDGET_SHARES]
        ax.plot(BUDGET_SHARES, medians, marker="o", label=f"{method} (n={len(by_share[1.0])})")
    ax.set(xscale="log", xticks=BUDGET_SHARES, xticklabels=SHARE_NAMES, ylim=(0, 1.05),
           xlabel="share of random search's epochs at the seed", ylabel="median normalised regret",
           title=f"{task_name}: 1 = the default, 0 = the best known")
    ax.minorticks_off()  # a log axis labels its minor ticks (2x10^-1, ...) over the shares' names
    ax.legend()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def task_args(task: Task, seed: int, folder: str, extra) -> list[str]:
    return [task.family, "--space", task.space, *task.flags, *extra, "--set", f"train.seed={seed}",
            "--storage", folder, "--confirm-top", "0", "-q"]


def method_fits(task: Task, method: str) -> str:
    """'' where the method can search the task's space, else why not (losstune-sweep's own checks)."""
    # here, not at the top: loads ray, optuna only where this runs
    from losstune.ray_jobs.cli.sweep_flags import check_population, check_search_fits_space, parse_args

    family = load_family(task.family)
    space = family.space(task.space, make_config(family, {}))
    as_given = parse_args([task.family, "--space", task.space, *METHODS[method]])
    try:
        check_population(as_given, space, task.space)
        check_search_fits_space(as_given.search, space, task.space)
    except UsageError as err:
        return str(err)
    return ""


def method_argv(task: Task, method: str, seed: int, trials: int, extra, folder: str, grace: int | None,
                startup: int = STARTUP_TRIALS) -> list[str]:
    """losstune-sweep's flags for one sweep of `method` at `seed`: random search's `trials`, PBT's
    and PB2's population of `trials`, more than the budget affords for the others (it stops them)."""
    asked = trials if method in ("random", *POPULATION) else 4 * trials
    flags = [*METHODS[method], "--trials", str(asked), "--seed", str(seed if method == "random" else
                                                                     SAMPLER_SEED_OFFSET + seed)]
    if method != "random":
        flags += ["--grace-epochs", str(grace)] if grace else []
    if method not in ("random", *POPULATION) and "--startup-trials" not in flags:
        flags += ["--startup-trials", str(startup)]
    return task_args(task, seed, folder, extra) + flags + ["--name", sweep_name(method, seed)]


def task_config(task: Task, argv: list[str]):
    """The config every trial of the sweep `argv` starts from (before the searched values)."""
    # here, not at the top: loads ray, optuna only where this runs
    from losstune.ray_jobs.cli import sweep_flags

    family = load_family(task.family)
    return make_config(family, sweep_flags.base_overrides(family, sweep_flags.parse_args(argv)))


def full_length(task: Task, argv: list[str]) -> int:
    """The epochs of a full-length trial of the sweep `argv`."""
    return task_config(task, argv).train.epochs


def spent(run: dict) -> int:
    """The epochs a run spent (its last point's count)."""
    return int(run["points"][-1][0]) if run["points"] else 0


def run_method(task: Task, method: str, seed: int, argv: list[str], budget: int) -> dict:
    """One sweep of `method` at `seed`, through the sweep's own plan and Tuner: its anytime curve,
    stopped once it has spent `budget` epochs."""
    # here, not at the top: loads ray, optuna only where this runs
    from losstune.search_spaces import default_point

    family = load_family(task.family)
    config = task_config(task, argv)
    recorder = Recorder(family.objective.metric, family.objective.mode, config.train.epochs, budget=budget,
                        default_point=default_point(family.space(task.space, config), config))
    started = time.time()
    run_sweep(argv, stop=recorder)
    return {"method": method, "seed": seed, "points": recorder.points, "budget": recorder.budget,
            "wall_s": time.time() - started, "default": recorder.default}


def identity(argv: list[str]) -> list[str]:
    """The flags a kept run is compared by: not where its sweep was stored, and not a population's
    size, which follows from random search's kept run at that seed (compared itself)."""
    argv = list(argv)
    population = argv[argv.index("--scheduler") + 1] in POPULATION
    for flag in ("--storage", "--trials") if population else ("--storage",):
        at = argv.index(flag)
        del argv[at:at + 2]
    return argv


def recorded(path: str, argv: list[str]) -> dict | None:
    """The run kept at `path`, None where there is none; a run made with other flags is refused, so a
    folder never mixes two protocols (checked for every run before Ray starts)."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            run = json.load(f)
    except ValueError as err:
        raise ValueError(f"--folder: {path} is not a run's record ({err}); move it away to run that sweep again")
    if run.get("argv") != identity(argv):
        raise ValueError(f"--folder: {path} was run with other flags ({' '.join(run.get('argv') or [])}); "
                         "use another folder for these")
    return run


def keep(path: str, run: dict, argv: list[str]) -> dict:
    """Writes the run's record whole or not at all (an interrupted write leaves no half record),
    with the commit it ran at: a change to a searcher changes its runs without changing a flag.
    Returns the record."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    record = {**run, "argv": identity(argv), **git_state(REPO)}
    with open(f"{path}.part", "w") as f:
        json.dump(record, f)
    os.replace(f"{path}.part", path)
    return record


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


def print_seed_noise(task: Task, seed: int, trials: int, extra, folder: str) -> None:
    """Random search's configs for sampler seed `seed`, trained at training seeds `seed` and
    `seed` + 1: does the task separate configs beyond the training seed's noise?"""
    tables = []
    for train_seed in (seed, seed + 1):
        table, _, _ = run_sweep(task_args(task, train_seed, folder, extra) + [
            "--name", f"noise-{seed}-{train_seed}", *METHODS["random"], "--seed", str(seed), "--trials", str(trials)])
        tables.append(table)
    r = seed_agreement(*tables, mode=load_family(task.family).objective.mode)
    print(f"{task.family} '{task.space}', {r['configs']} random configs at training seeds {seed} and {seed + 1} "
          f"({machine()}): Spearman {r['spearman']:.2f}; seed {seed}'s best ranks {r['a_best_rank_in_b']} at seed "
          f"{seed + 1}; median config - best {r['spread']:.4f}, median change of one config {r['seed_change']:.4f}")


def parse_args() -> argparse.Namespace:
    """The command line, checked before Ray starts."""
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--methods", nargs="+", choices=list(METHODS), help="default: all; with --quick, "
                   f"{' '.join(QUICK['methods'])}")
    p.add_argument("--seeds", type=int, default=10, help="seeds per method (the protocol asks for at least 10)")
    p.add_argument("--trials", type=int, default=32, help="random search's trials: the budget is trials x epochs")
    p.add_argument("--grace-epochs", type=int, help="ASHA's grace period (default: the sweep's, a quarter)")
    p.add_argument("--folder", help="keep each finished sweep's curve here, and reuse the ones kept "
                   "(default: a new temporary folder)")
    p.add_argument("--summary-only", action="store_true", help="no sweeps: the figures of what --folder holds")
    p.add_argument("--seed-noise", action="store_true",
                   help="instead: random search's configs of seed 0 at two training seeds, per task")
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK['seeds']} seeds, {QUICK['trials']} random trials, lc_weights on a smaller task "
                        "(under 15 minutes)")
    args = p.parse_args()
    args.methods = args.methods or (QUICK["methods"] if args.quick else list(METHODS))
    if args.seeds < 2:
        p.error(f"--seeds: {args.seeds}: a median and its interval need at least 2")
    if "random" not in args.methods:
        p.error("--methods: random search is the reference every figure is relative to; keep it")
    if args.folder and os.path.exists(args.folder) and not os.path.isdir(args.folder):
        p.error(f"--folder: {args.folder} is a file, not a folder")
    if args.summary_only and not (args.folder and os.path.isdir(args.folder)):
        p.error(f"--summary-only: needs the --folder of earlier runs ({args.folder or 'none given'})")
    return args


def protocol(args: argparse.Namespace) -> tuple[dict, list]:
    """The run's settings (--quick's or the flags'), and its sweeps in order, (task name, method,
    seed), seeds outer; methods a task's space refuses are left out, with why."""
    settings = {"tasks": args.tasks, "seeds": args.seeds, "trials": args.trials, "extra": (),
                "startup": STARTUP_TRIALS}
    if args.quick:
        settings.update(tasks=QUICK["tasks"], seeds=QUICK["seeds"], trials=QUICK["trials"], extra=QUICK["flags"],
                        startup=QUICK["startup"])
    skipped = {name: {m: why for m in args.methods if (why := method_fits(TASKS[name], m))}
               for name in settings["tasks"]}
    methods = ["random", *(m for m in args.methods if m != "random")]  # random first: it sets the budget
    sweeps = [(name, method, seed) for name in settings["tasks"] for seed in range(settings["seeds"])
              for method in methods if method not in skipped[name]]
    return {**settings, "skipped": skipped}, sweeps


def with_budget(sweep: tuple, argv: list[str], runs: dict, settings: dict, folder: str, grace) -> tuple[list, int]:
    """The sweep's flags and epoch budget: random search runs its trials; every other method gets
    what random search spent at that seed (run first), and a population as many full-length
    trials as that affords."""
    name, method, seed = sweep
    epochs = full_length(TASKS[name], argv)
    if method == "random":
        return argv, settings["trials"] * epochs
    budget = spent(runs[(name, "random", seed)])
    if method in POPULATION:
        argv = method_argv(TASKS[name], method, seed, max(1, budget // epochs), settings["extra"],
                           f"{folder}/{name}", grace, settings["startup"])
    return argv, budget


def sweep_name(method: str, seed: int) -> str:
    """The sweep's --name, its folder under the task's, and (with .json) its kept record's name."""
    return f"{method}-{seed}"


def run_path(folder: str, name: str, method: str, seed: int) -> str:
    return os.path.join(folder, name, f"{sweep_name(method, seed)}.json")


def discard_unfinished(folder: str, name: str, method: str, seed: int) -> None:
    """A sweep's folder without its record is one this script was stopped in. Its curve went with
    the process, and the sweep CLI refuses an existing --name, so it runs again from the start
    (resuming it would not give the anytime curve of one uninterrupted sweep)."""
    sweep = os.path.join(folder, name, sweep_name(method, seed))
    if os.path.isdir(sweep):
        print(f"  {name} {method} seed {seed}: unfinished in an earlier run; running it again from the start",
              flush=True)
        shutil.rmtree(sweep)


def main() -> None:
    # here, not at the top: loads optuna only where this runs
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its INFO on every in-memory study of a space
    args = parse_args()
    settings, sweeps = protocol(args)
    folder = os.path.abspath(args.folder) if args.folder else scratch("search")
    if args.seed_noise:
        start_local_ray()
        for name in settings["tasks"]:
            print_seed_noise(TASKS[name], 0, settings["trials"], settings["extra"], folder)
        return
    argvs = {s: method_argv(TASKS[s[0]], s[1], s[2], settings["trials"], settings["extra"], f"{folder}/{s[0]}",
                            args.grace_epochs, settings["startup"]) for s in sweeps}
    try:  # every kept run checked before Ray starts
        runs = {s: recorded(run_path(folder, *s), argvs[s]) for s in sweeps}
    except ValueError as err:
        print(f"search_efficiency.py: error: {err}", file=sys.stderr)
        sys.exit(2)
    missing = [s for s in sweeps if runs[s] is None]
    print(f"sweeps in {folder} ({machine()}): {len(sweeps) - len(missing)} of {len(sweeps)} kept there, "
          f"{0 if args.summary_only else len(missing)} to run", flush=True)
    if missing and not args.summary_only:
        start_local_ray()
    for s in [] if args.summary_only else missing:
        discard_unfinished(folder, *s)
        argv, budget = with_budget(s, argvs[s], runs, settings, folder, args.grace_epochs)
        runs[s] = keep(run_path(folder, *s), run_method(TASKS[s[0]], s[1], s[2], argv, budget), argv)
        print(f"  {s[0]} {s[1]} seed {s[2]}: incumbent {runs[s]['points'][-1][2]:.5g} after "
              f"{runs[s]['points'][-1][0]} epochs, {runs[s]['wall_s']:.0f} s", flush=True)
    for name in settings["tasks"]:
        report(name, [run for s, run in runs.items() if s[0] == name and run], settings, folder)


def report(name: str, runs: list[dict], settings: dict, folder: str) -> None:
    """The task's figures and plot, from the runs made or kept (a task with no random search has none)."""
    if not any(r["method"] == "random" for r in runs):
        print(f"{name}: no random search run yet: no figures")
        return
    objective = load_family(TASKS[name].family).objective
    mode = objective.mode
    summary = summarise(runs, mode)
    random_run = next(r for r in runs if r["method"] == "random")
    print_summary(name, summary, settings["skipped"][name], full_length(TASKS[name], random_run["argv"]),
                  settings["startup"])
    path = f"{folder}/{name}_anytime.png"
    plot(name, runs, summary, path, mode)
    table = regrets(runs, summary["best"])
    for line in regret_lines(name, table):
        print(line)
    plot_regret(name, table, f"{folder}/{name}_regret.png")
    for line in branch_lines(TASKS[name], runs, f"{folder}/{name}", objective.metric, mode):
        print(line)
    print(f"  anytime curves: {path}, regret: {folder}/{name}_regret.png; wall {sum(r['wall_s'] for r in runs) / 60:.1f} min of sweeps", flush=True)
    print(f"  runs by the commit they ran at: {commits(runs)}")


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


def run_trials(task: Task, run: dict, folder: str, metric: str) -> list[tuple[dict, float | None]]:
    """Each trial of a kept run's Tune folder that reported: its flat config ("caps/mode": "B") and
    its final value where it ran every epoch healthy, else None. Read from each trial's last result."""
    sweep = os.path.join(folder, sweep_name(run["method"], run["seed"]))
    epochs = full_length(task, run["argv"])
    trials = []
    for trial in sorted(os.listdir(sweep)) if os.path.isdir(sweep) else []:
        path = os.path.join(sweep, trial, "result.json")
        lines = open(path).read().splitlines() if os.path.exists(path) else []
        if lines:
            last = json.loads(lines[-1])
            full = last.get("epoch") == epochs and not last.get("stop_reason")
            trials.append((flatten(last["config"]), last[metric] if full else None))
    return trials


def commits(runs: list[dict]) -> str:
    """'abc1234 (12), not recorded (30)': which code the kept runs come from, `+` where it had
    uncommitted changes."""
    counts = Counter(r["commit"][:7] + ("+" if r.get("dirty") else "") if r.get("commit") else "not recorded"
                     for r in runs)
    return ", ".join(f"{commit} ({n})" for commit, n in counts.most_common())


if __name__ == "__main__":
    main()
