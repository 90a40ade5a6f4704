"""search_efficiency's protocol replayed against the recorded landscapes (benchmarks/landscapes.py,
benchmarks/replay.py): every method through the sweep's own searcher and ASHA
(benchmarks/replay_sweep.py), where an epoch costs a lookup, so 20 seeds of 7 methods on 4 tasks fit
on 2 cores. Per task: the surrogate's fidelity, the regret table, its targets, and the replay set
beside the real 4-seed runs of the same methods."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np


from replay import FOLDS, Landscape, fidelity, seed_agreement_of_record
from replay_sweep import replay_sweep
from search_regret import BUDGET_SHARES, SHARE_NAMES, WRONG_PRIOR, median_of, plot_regret, regret_lines, regrets
from search_runs import Recorder, method_argv, task_config
from search_stats import spent
from search_tasks import TASKS
from losstune.trainables.config import unflatten
from losstune.trainables.registry import load_family

# the protocol of issue 75: random; TPE + ASHA with the branch-fair and the coin start-up; piBO +
# ASHA at each prior confidence; and piBO whose prior is centred on a poor recorded config
REPLAY_METHODS = ("random", "tpe-asha", "tpe-coin-asha", "prior-low-asha", "prior-asha", "prior-high-asha",
                  "prior-wrong-asha")

# The real sweeps the replay is checked against: median normalised regret at 1/8, 1/4, 1/2 and all
# of random search's budget, seeds 0-3, benchmarks/search_efficiency.py at 2026-11-28 (docs/search.md;
# the runs' folders were lost with that machine, so their medians are what is left)
REAL_RUNS = {
    "hdr_all": {"prior-asha": (0.42, 0.39, 0.34, 0.12), "tpe-asha": (0.84, 0.40, 0.23, 0.03),
                "tpe-coin-asha": (0.69, 0.47, 0.36, 0.25), "random": (0.83, 0.32, 0.27, 0.14)},
    "lc_weights": {"prior-asha": (0.81, 0.11, 0.11, 0.06), "tpe-asha": (1.00, 1.00, 0.08, 0.05),
                   "random": (1.00, 0.56, 0.12, 0.12)},
}
REAL_SEEDS = 4


def landscape_path(folder: str, task_name: str) -> str:
    return os.path.join(folder, f"{task_name}.parquet")


def wrong_point(landscape: Landscape, mode: str) -> dict:
    """A prior far from the good region: the recorded config with the worst seed-mean final value
    among those that ran every epoch at every recorded seed without a health stop."""
    whole = [i for i in range(len(landscape.points)) if landscape.healthy_to_the_end(i)]
    finals = {i: landscape.mean_curve(i)[-1] for i in whole}
    return landscape.points[max(finals, key=finals.get) if mode == "min" else min(finals, key=finals.get)]


def replay_seed(task_name: str, landscape: Landscape, seed: int, methods: tuple, trials: int) -> list[dict]:
    """Every method of the protocol at one seed against one task's record: random search first (its
    spend is every other method's budget), in a scratch folder that is removed after."""
    # here, not at the top: loads optuna only where this runs
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # this process's own: spawned, it starts at INFO
    task = TASKS[task_name]
    family = load_family(task.family)
    runs = []
    with tempfile.TemporaryDirectory(prefix="losstune-replay-") as folder:
        wrong = os.path.join(folder, "wrong_prior.json")
        with open(wrong, "w") as f:
            json.dump(unflatten(wrong_point(landscape, family.objective.mode)), f)
        for method in methods:
            argv = method_argv(task, method, seed, trials, (), folder, None)
            if method == WRONG_PRIOR:
                argv += ["--config", wrong]
            epochs = task_config(task, argv).train.epochs  # parses the sweep's flags: once a method
            budget = trials * epochs if method == "random" else spent(runs[0])
            recorder = Recorder(family.objective.metric, family.objective.mode, epochs, budget=budget,
                                default_point=landscape.points[0])
            started = time.time()
            launched = replay_sweep(argv, landscape, recorder)
            runs.append({"method": method, "seed": seed, "points": recorder.points, "default": recorder.default,
                         "trials": launched, "wall_s": time.time() - started})
    return runs


def read_landscapes(tasks: list[str], folder: str) -> dict[str, Landscape]:
    """{task: its record in `folder`, its surrogate fitted}: once here, not in every process."""
    landscapes = {name: Landscape.read(landscape_path(folder, name)) for name in tasks}
    for landscape in landscapes.values():
        landscape.surrogate  # fits it here, so the pickled landscape each job is sent carries it
    return landscapes


def replay_protocol(landscapes: dict[str, Landscape], seeds: int, methods: tuple, trials: int,
                    processes: int) -> dict[str, list[dict]]:
    """{task: its runs}: every (task, seed) on its own in `processes` processes."""
    jobs = [(name, seed) for name in landscapes for seed in range(seeds)]
    runs: dict[str, list[dict]] = {name: [] for name in landscapes}
    started = time.time()
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(replay_seed, name, landscapes[name], seed, methods, trials): (name, seed)
                   for name, seed in jobs}
        for n, future in enumerate(futures, 1):
            name, seed = futures[future]
            runs[name] += future.result()
            print(f"  replayed {name} seed {seed} ({n}/{len(jobs)}, {time.time() - started:.0f} s)", flush=True)
    return runs


def regret_table(runs: list[dict], mode: str) -> tuple[dict, float]:
    """{method: {share: {seed: normalised regret}}} and the best any run reached (regret's 0)."""
    finals = [p[2] for r in runs for p in r["points"] if not math.isnan(p[2])]
    best = min(finals) if mode == "min" else max(finals)
    return regrets(runs, best), best


def fidelity_lines(task_name: str, landscape: Landscape) -> list[str]:
    made = fidelity(landscape)
    seeds = seed_agreement_of_record(landscape)
    return [f"{task_name}: record {len(landscape.points)} configs x {len(landscape.seeds)} seeds; the surrogate "
            f"(a Gaussian process, fitted without each config in turn, {FOLDS} folds) against the recorded final "
            f"value of held-out configs that ran healthy: Spearman {made['rho']:.2f} (N {made['n']}); one training "
            f"seed against the other over every config recorded at both: Spearman {seeds['rho']:.2f} "
            f"(N {seeds['n']}), the most a surrogate of seed means can be expected to rank; its stop called right "
            f"on {made['stops']:.0%} of held-out runs (N {made['stop_runs']}; always the commoner outcome: "
            f"{made['stops_majority']:.0%})"]


def real_run_lines(task_name: str, runs: list[dict], mode: str, draws: int = 400) -> list[str]:
    """The replay beside the real 4-seed runs, as those were figured: regret normalised by the best of
    the same methods' runs at the 4 seeds. Per method and budget: the real median; the replay's at
    the same sampler seeds (0-3); and the 95% range of the replay's 4-seed median over `draws` sets
    of 4 distinct seeds of its own, in which the real median should lie if the replay is faithful."""
    if task_name not in REAL_RUNS or not any(r["method"] == "random" for r in runs):
        return []
    real = REAL_RUNS[task_name]
    same_seeds = four_seed_medians(runs, real, mode, range(REAL_SEEDS))
    seeds = sorted({r["seed"] for r in runs})
    rng = np.random.default_rng(0)
    # fewer seeds than the real runs had: no sets to draw, the range is left out
    drawn = [four_seed_medians(runs, real, mode, rng.choice(seeds, REAL_SEEDS, replace=False))
             for _ in range(draws if len(seeds) > REAL_SEEDS else 0)]
    lines = [f"  against the real sweeps ({REAL_SEEDS} seeds, 2026-11-28), regret normalised among these methods "
             f"at {REAL_SEEDS} seeds: real median / replay's at seeds 0-{REAL_SEEDS - 1} / replay's 95% range of a "
             f"{REAL_SEEDS}-seed median ({draws} draws of {len(seeds)} seeds), real inside?"]
    for method, medians in real.items():
        if method not in same_seeds:
            continue
        cells = []
        for k, (name, value) in enumerate(zip(SHARE_NAMES, medians)):
            low, high = np.nanpercentile([d[method][k] for d in drawn], [2.5, 97.5]) if drawn else (math.nan,) * 2
            inside = "-" if math.isnan(low) else "in" if low <= value <= high else "OUT"
            cells.append(f"{name} {value:.2f} / {same_seeds[method][k]:.2f} / [{low:.2f}, {high:.2f}] {inside}")
        lines.append(f"    {method:<14} " + "; ".join(cells))
    return lines


def four_seed_medians(runs: list[dict], methods, mode: str, seeds) -> dict[str, list[float]]:
    """{method: median normalised regret at each budget share} over the runs of `methods` at `seeds`,
    the best known taken among those runs alone."""
    chosen = [r for r in runs if r["method"] in methods and r["seed"] in set(int(s) for s in seeds)]
    table, _ = regret_table(chosen, mode)
    return {m: [median_of(table[m][share]) for share in BUDGET_SHARES] for m in table}


def replay_main(tasks: list[str], seeds: int, methods: tuple, trials: int, landscapes: str, folder: str,
                processes: int) -> None:
    """The protocol on every task of `tasks` that has a record in `landscapes` (the others named, with
    the command that records them): its figures printed, its regret plot in `folder`."""
    recorded = [name for name in tasks if os.path.exists(landscape_path(landscapes, name))]
    for name in sorted(set(tasks) - set(recorded)):
        print(f"{name}: no recorded landscape in {landscapes}: python benchmarks/landscapes.py --task {name}")
    started = time.time()
    print(f"replaying {', '.join(methods)} at {seeds} seeds on {', '.join(recorded)} ({processes} processes)",
          flush=True)
    read = read_landscapes(recorded, landscapes)
    runs = replay_protocol(read, seeds, methods, trials, processes)
    for name in recorded:
        with open(os.path.join(folder, f"{name}_replay_runs.json"), "w") as f:
            json.dump(runs[name], f)  # every run's anytime curve, to figure again without replaying
        report(name, runs[name], read[name], folder)
    print(f"replay: {(time.time() - started) / 60:.1f} min of wall time")


def report(name: str, runs: list[dict], landscape: Landscape, folder: str) -> None:
    """One task's figures: the surrogate's fidelity, the regret table with its targets, the real runs."""
    table, best = regret_table(runs, load_family(TASKS[name].family).objective.mode)
    mode = load_family(TASKS[name].family).objective.mode
    for line in fidelity_lines(name, landscape) + regret_lines(name, table) + real_run_lines(name, runs, mode):
        print(line)
    seconds = {}
    for run in runs:
        seconds[run["method"]] = seconds.get(run["method"], 0.0) + run["wall_s"]
    print(f"  best any replay reached {best:.5g}; seconds per method (all seeds): "
          + ", ".join(f"{m} {s:.0f}" for m, s in seconds.items()))
    plot_regret(name, table, os.path.join(folder, f"{name}_replay_regret.png"))
    print(f"  plot: {os.path.join(folder, f'{name}_replay_regret.png')}", flush=True)
