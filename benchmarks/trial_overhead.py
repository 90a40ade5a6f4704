"""python benchmarks/trial_overhead.py [--trials 8] [--quick]

Per-trial fixed overhead of a sweep, for a trivial model (hdr_patch --smoke-test, 1 epoch of 4
steps), for both ways a one-worker trial trains, one sweep after the other on the same Ray: in the
trial's own process (Train's local mode, the default) and in a worker group (--worker-group).
Trials run one at a time so they do not compete for cores; a trial starts when the one
before it ends (the first when Tuner.fit starts). For each trial:
  startup   = trial start -> its first training step done
  teardown  = its last training step done -> Tune marks the trial complete
and where the time goes, from the marks that trainables/engine/timeline.py writes when LOSSTUNE_TIMELINE
is set: Tune's driver actor, the TorchTrainer controller and worker, the worker's imports,
Accelerate, data and model, the first step; validation, checkpoint and report, fit() returning.
Median and max over the trials. Also the machine's CPU busy time per trial (all processes, from
/proc/stat): the trials' processes compete for 2 cores in a sweep or the test run, where their
wall time alone moves with whatever else the machine runs; and how much of it each kind of Ray
worker process took (Train's controller and worker, its helper actors, Tune's trial actor).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from process_cpu import RayProcessCPU, machine_cpu_seconds  # noqa: E402
from common import (REPO, TRIAL_PATHS, machine, read_timeline, run_sweep, scratch, start_local_ray,  # noqa: E402
                    tune_marks)
import time

# (label, from mark, to mark): consecutive stretches of a trial's startup, then of its teardown
STARTUP = [
    ("Tune: trial start -> driver actor up", "start", "tune_trial_started"),
    ("driver actor up -> run_trial entered", "tune_trial_started", "driver_entered"),
    ("TorchTrainer.fit -> controller process created", "driver_entered", "controller_process_created"),
    ("controller: process start -> running (imports)", "controller_process_created", "controller_started"),
    ("controller: running -> worker group start", "controller_started", "worker_group_starting"),
    ("worker group: placement group, worker, torch process group", "worker_group_starting",
     "worker_group_started"),
    ("worker: train function imported and entered", "worker_group_started", "loop_entered"),
    ("worker: Accelerator + seed", "loop_entered", "accelerator_ready"),
    ("worker: data + model built", "accelerator_ready", "data_and_model_built"),
    ("worker: prepare + restore", "data_and_model_built", "prepared"),
    ("worker: first step", "prepared", "first_step_done"),
]
TEARDOWN = [
    ("worker: validation + checkpoint + report", "epoch_steps_done", "reported"),
    ("TorchTrainer: last report -> fit() returns", "reported", "fit_returned"),
    ("Tune: fit() returned -> trial complete", "fit_returned", "tune_trial_completed"),
]
# marks that carry their process's creation time, and the name that time gets
PROCESS_CREATED = {"controller_started": "controller_process_created", "loop_entered": "worker_process_created"}


def trial_times(marks: list[dict], fit_started: float, trial_ids) -> list[dict]:
    """One dict per trial of `trial_ids`: the time of each mark (first of startup marks, last of
    teardown marks)."""
    marks = [m for m in marks if m["t"] >= fit_started]
    # a process's marks without a trial belong to the last trial it named: a worker runs one trial,
    # a trial's own process (Tune reuses it) one after the other
    running: dict[int, str] = {}  # pid -> trial id
    trials: dict[str, dict] = {}
    for m in sorted(marks, key=lambda m: m["t"]):
        if "run" in m:
            running[m["pid"]] = m["run"]
        run = m.get("run") or running.get(m["pid"])
        if run not in trial_ids:
            continue
        times = trials.setdefault(run, {})
        if m["event"] in ("epoch_steps_done", "reported", "fit_returned", "tune_trial_completed"):
            times[m["event"]] = m["t"]  # the last one counts
        else:
            times.setdefault(m["event"], m["t"])
        if m["event"] in PROCESS_CREATED:
            times.setdefault(PROCESS_CREATED[m["event"]], m["t_process"])
    ordered = sorted(trials.values(), key=lambda t: t["tune_trial_started"])
    previous_end = fit_started
    for times in ordered:
        times["start"] = previous_end
        previous_end = times["tune_trial_completed"]
    return ordered


def report(trials: list[dict]) -> None:
    def line(label, values):
        print(f"  {label:<58} median {statistics.median(values):6.2f} s   max {max(values):6.2f} s")

    print(f"over {len(trials)} trials ({machine()}):")
    line("STARTUP: trial start -> first step done", [t["first_step_done"] - t["start"] for t in trials])
    # a trial that trains in its own process has no controller or worker group: its stretches
    # run from the mark before the missing ones to the next present one
    for label, a, b in STARTUP:
        if all(a in t and b in t for t in trials):
            line("  " + label, [t[b] - t[a] for t in trials])
    if all("worker_process_created" in t for t in trials):
        line("  (worker process start -> loop entered: imports)",
             [t["loop_entered"] - t["worker_process_created"] for t in trials])
    if not all("controller_started" in t for t in trials):
        line("  run_trial entered -> loop entered (local-mode TorchTrainer)",
             [t["loop_entered"] - t["driver_entered"] for t in trials])
    line("TEARDOWN: last step done -> trial complete", [t["tune_trial_completed"] - t["epoch_steps_done"] for t in trials])
    for label, a, b in TEARDOWN:
        if all(a in t and b in t for t in trials):
            line("  " + label, [t[b] - t[a] for t in trials])


def import_seconds(statements: str) -> float:
    """Seconds a fresh interpreter spends running `statements` (imports) on this machine."""
    code = f"import time\nt = time.time()\n{statements}\nprint(time.time() - t)"
    return float(subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout)


# What the worker imports, in its order; a family's build imports MONAI with its extras hidden
# (matplotlib, transformers).
WORKER = "import losstune.trainables.families.hdr_patch, losstune.trainables.engine.loop"
WORKER_MONAI = WORKER + "\nwith losstune.trainables.engine.worker_setup.monai_extras_hidden():\n    import monai.networks.nets"


def overhead(trials: int, folder: str, timeline: str, name: str, extra: list) -> float:
    """Runs one sweep of `trials` one-epoch trials, one at a time, prints where their time goes, and
    returns their median startup (trial start -> first step done)."""
    fit_started, busy_before = time.time(), machine_cpu_seconds()
    with RayProcessCPU() as ray_cpu:
        table, _, wall = run_sweep(["hdr_patch", "--space", "caps", "--smoke-test", "--epochs", "1",
                                    "--trials", str(trials), "--search", "random", "--scheduler", "none",
                                    "--max-concurrent", "1", "--keep-checkpoints", "1", *extra,
                                    "--storage", folder, "--name", name], callbacks=[tune_marks()])
    assert (table["status"] == "COMPLETED").all(), table[["status", "error"]]
    times = trial_times(read_timeline(timeline), fit_started, set(table["trial_id"]))
    report(times)
    compute = [t["epoch_steps_done"] - t["first_step_done"] for t in times]
    print(f"  (training compute after the first step: median {statistics.median(compute):.2f} s)")
    print(f"sweep wall {wall:.1f} s for {trials} trials, one at a time; "
          f"CPU busy {(machine_cpu_seconds() - busy_before) / trials:.1f} s per trial (the whole machine's)")
    print("  of which Ray's worker processes, per trial (polled: lower bounds): " + "; ".join(
        f"{name} {seconds / trials:.1f} s ({n} process{'es' if n > 1 else ''})"
        for name, (n, seconds) in ray_cpu.by_kind().items()))
    return statistics.median(t["first_step_done"] - t["start"] for t in times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--quick", action="store_true", help="8 trials")
    args = p.parse_args()
    trials = 8 if args.quick else args.trials
    folder = scratch("overhead")
    path = os.path.join(folder, "timeline.jsonl")
    start_local_ray(path)
    startup = {}
    for label, extra in TRIAL_PATHS.items():
        print(f"--- one-worker trials in the {label} ---")
        startup[label] = overhead(trials, folder, path, label.replace(" ", "_"), extra)
    print(f"startup (trial start -> first step done), median: trial process {startup['trial process']:.2f} s, "
          f"worker group {startup['worker group']:.2f} s: {startup['worker group'] / startup['trial process']:.1f}x shorter")
    # what a fresh process pays before it can do anything (Train starts two per trial)
    print("imports in a fresh interpreter: " + "; ".join(
        f"{label} {import_seconds(statements):.2f} s" for label, statements in [
            ("Train controller (ray.train.torch + Tune callback)",
             "import ray.train.v2._internal.execution.controller, ray.train.torch, ray.tune.integration.ray_train"),
            ("worker (family + loop)", WORKER),
            ("+ MONAI networks (matplotlib hidden)", WORKER_MONAI),
            ("+ torch._dynamo (first optimizer)", WORKER_MONAI + "\nimport torch._dynamo")]))


if __name__ == "__main__":
    main()
