"""python benchmarks/search_efficiency.py [--tasks hdr_caps lc_weights] [--methods random tpe-asha] [--seeds 10] [--quick] [--folder DIR] [--summary-only] [--replay [--landscapes DIR]]

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
--replay trains nothing: each method runs through the sweep's own searcher and ASHA against the
task's recorded landscape (benchmarks/landscapes.py records one, benchmarks/search_replay.py
replays it), where an epoch costs a lookup; it prints the surrogate's fidelity, the regret table
and its targets, and the replay beside the real 4-seed runs. `python
benchmarks/search_efficiency.py --replay --seeds 20` is issue 75's protocol.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine, run_sweep, scratch, start_local_ray  # noqa: E402
from landscapes import DEFAULT_FOLDER as DEFAULT_LANDSCAPES  # noqa: E402
from replay_sweep import REPLAYED_SCHEDULERS  # noqa: E402
from search_regret import plot_regret, regret_lines, regrets  # noqa: E402
from search_report import branch_lines, commits, plot, print_summary  # noqa: E402
from search_runs import (Recorder, discard_unfinished, full_length, keep, method_argv, method_fits,  # noqa: E402
                         recorded, run_path, task_args, task_config)
from search_replay import REPLAY_METHODS, landscape_path, replay_main  # noqa: E402
from search_stats import seed_agreement, spent, summarise  # noqa: E402
from search_tasks import METHODS, POPULATION, QUICK, STARTUP_TRIALS, TASKS, Task  # noqa: E402
from losstune.trainables.registry import load_family  # noqa: E402


# --- regret at each budget (issue 60): how close to the best known each method is, per seed ---------


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
    p.add_argument("--replay", action="store_true",
                   help="run every method against the recorded landscapes (benchmarks/landscapes.py) instead of "
                        f"training: by default {' '.join(REPLAY_METHODS)}")
    p.add_argument("--landscapes", default=DEFAULT_LANDSCAPES, help="with --replay: the folder of the records")
    p.add_argument("--processes", type=int, default=2, help="with --replay: seeds replayed at a time")
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK['seeds']} seeds, {QUICK['trials']} random trials, lc_weights on a smaller task "
                        "(under 15 minutes)")
    args = p.parse_args()
    args.methods = args.methods or (QUICK["methods"] if args.quick else
                                    list(REPLAY_METHODS) if args.replay else list(METHODS))
    if args.replay:
        check_replay(p, args)
    if args.seeds < 2:
        p.error(f"--seeds: {args.seeds}: a median and its interval need at least 2")
    if "random" not in args.methods:
        p.error("--methods: random search is the reference every figure is relative to; keep it")
    if args.folder and os.path.exists(args.folder) and not os.path.isdir(args.folder):
        p.error(f"--folder: {args.folder} is a file, not a folder")
    if args.summary_only and not (args.folder and os.path.isdir(args.folder)):
        p.error(f"--summary-only: needs the --folder of earlier runs ({args.folder or 'none given'})")
    return args


def check_replay(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--replay's flags, before anything runs: methods the replay can drive, records that exist."""
    for method in args.methods:
        if METHODS[method][METHODS[method].index("--scheduler") + 1] not in REPLAYED_SCHEDULERS:
            p.error(f"--methods: {method} pauses or exploits trials; --replay drives only the schedulers "
                    f"{', '.join(REPLAYED_SCHEDULERS)}")
    if not any(os.path.exists(landscape_path(args.landscapes, name)) for name in args.tasks):
        p.error(f"--landscapes: {args.landscapes} holds no record of {', '.join(args.tasks)} "
                "(python benchmarks/landscapes.py --task TASK records one)")
    if args.processes < 1:
        p.error(f"--processes must be >= 1, got {args.processes}")


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


def main() -> None:
    # here, not at the top: loads optuna only where this runs
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its INFO on every in-memory study of a space
    args = parse_args()
    folder = os.path.abspath(args.folder) if args.folder else scratch("search")
    if args.replay:
        os.makedirs(folder, exist_ok=True)
        replay_main(args.tasks, args.seeds, tuple(args.methods), args.trials, args.landscapes, folder, args.processes)
        return
    settings, sweeps = protocol(args)
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


if __name__ == "__main__":
    main()
