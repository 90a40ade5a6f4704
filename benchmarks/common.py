"""Shared by the benchmark scripts: a local Ray, a sweep run through the platform's own sweep
code, and the timeline it leaves (trainables/engine/timeline.py)."""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout the benchmarks run from
# the two places a one-worker trial can train, and the sweep flags that pick each
TRIAL_PATHS = {"trial process": [], "worker group": ["--worker-group"]}
sys.path.insert(0, REPO)

from losstune.trainables.config import flatten  # noqa: E402
from losstune.trainables.engine import timeline  # noqa: E402
from losstune.trainables.registry import load_family
import subprocess


def machine() -> str:
    # here, not at the top: loads torch only where this runs
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPUs, {gpu}"


def start_local_ray(timeline_path: str = "") -> None:
    """A local Ray on this machine's cores; workers inherit LOSSTUNE_TIMELINE from this process."""
    # here, not at the top: loads cloudpickle only where this runs
    from losstune.ray_jobs.core.cluster import start_local_ray as start

    if timeline_path:
        os.environ[timeline.ENV] = timeline_path
    start()


def run_sweep(argv: list[str], callbacks=(), stop=None):
    """A sweep through ray_jobs.sweep's own plan and Tuner; returns (trials table, history table,
    wall seconds of Tuner.fit)."""
    # here, not at the top: loads ray, optuna, scipy and more only where this runs
    import optuna

    from losstune.ray_jobs.results import tables as results
    from losstune.ray_jobs.cli import sweep_flags
    from losstune.ray_jobs.core.cluster import fit_to_cluster
    from losstune.ray_jobs.core.plan import metadata
    from losstune.ray_jobs.search.tuning import build_tuner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = fit_to_cluster(sweep_flags.make_plan(sweep_flags.parse_args(argv)))
    started = time.time()
    grid = build_tuner(plan, callbacks=callbacks, stop=stop).fit()
    wall = time.time() - started
    trials, history = results.tables(grid, metadata(plan))
    return trials, history, wall


def platform_run(family_name: str, overrides: dict, storage: str, name: str, gpus: float = 0.0):
    """One TorchTrainer run of a family, 1 worker on 1 CPU (or 1 GPU); returns rank 0's reports."""
    # here, not at the top: loads torch, ray, accelerate and more only where this runs
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.train.v2.api.callback import UserCallback

    from losstune.trainables.engine.ray_session import train_loop

    resources = {"CPU": 1, "GPU": gpus} if gpus else {"CPU": 1}
    log = os.path.join(storage, f"{name}.reports.jsonl")

    class Collect(UserCallback):  # runs in Train's controller actor: hands the reports over in a file
        def after_report(self, run_context, metrics, checkpoint):
            with open(log, "a") as f:
                f.write(json.dumps({k: v for k, v in metrics[0].items() if isinstance(v, (int, float, str))}) + "\n")

    trainer = TorchTrainer(train_loop(load_family(family_name)), train_loop_config=overrides,
                           scaling_config=ray.train.ScalingConfig(num_workers=1, use_gpu=gpus > 0,
                                                                  resources_per_worker=resources),
                           run_config=ray.train.RunConfig(name=name, storage_path=storage, callbacks=[Collect()]))
    trainer.fit()
    return read_timeline(log)


def tune_marks():
    """A Tune callback that marks when each trial's actor is up and when the trial ends."""
    # here, not at the top: loads ray, pandas only where this runs
    from ray.tune import Callback

    class Marks(Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            timeline.mark("tune_trial_started", run=trial.trial_id)

        def on_trial_complete(self, iteration, trials, trial, **info):
            timeline.mark("tune_trial_completed", run=trial.trial_id)

        def on_trial_error(self, iteration, trials, trial, **info):
            timeline.mark("tune_trial_completed", run=trial.trial_id, error=True)

    return Marks()


def read_timeline(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]


def summary(values) -> str:
    values = list(values)
    return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"


def interleaved_medians(states: dict, one_round, rounds: int, steps: int) -> dict:
    """{key: median seconds per step}: each state's `one_round(state, steps)` (which returns
    seconds per step) after a one-step warm-up, the states taking turns in every round, so that
    the machine's drift reaches them alike."""
    for state in states.values():
        one_round(state, 1)
    times = {key: [] for key in states}
    for _ in range(rounds):
        for key, state in states.items():
            times[key].append(one_round(state, steps))
    return {key: statistics.median(values) for key, values in times.items()}


def scratch(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=f"losstune_{prefix}_")


def in_fresh_process(module: str, function: str, *args):
    """`module.function(*args)` (a benchmark script's, arguments plain values) in a fresh Python
    process, for figures such as peak memory that this process's history would distort; its
    result comes back through JSON."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = (f"import sys, json; sys.path[:0] = {sys.path[:2]!r}; import {module}; "
            f"print(json.dumps({module}.{function}(*{args!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=here)
    return json.loads(out.stdout.strip().splitlines()[-1])


def as_set_flags(overrides: dict) -> list[str]:
    """Nested overrides as the sweep's --set KEY=VALUE flags."""
    return [flag for key, value in flatten(overrides, ".").items() for flag in ("--set", f"{key}={json.dumps(value)}")]
