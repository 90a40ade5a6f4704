"""python benchmarks/sweep_throughput.py [--trials 16] [--quick]

Trials per hour of a sweep of a tiny config (hdr_patch --smoke-test, 3 epochs, no ASHA, so every
trial does the same work) at the concurrency this machine allows, against the ideal: every core
busy training, no per-trial overhead, i.e. concurrency x 3600 / (one trial's compute), where a
trial's compute is the sum of its epochs' train + validation time (`time/epoch_s`). Both ways a
one-worker trial can train run here, one after the other on the same Ray: in the trial's own
process (the default) and in a Ray Train worker group (--worker-group); the ratio is the speed-up.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import TRIAL_PATHS, machine, run_sweep, scratch, start_local_ray  # noqa: E402


def throughput(trials: int, name: str, extra: list) -> dict:
    """One sweep's trials/hour, achieved and ideal."""
    # here, not at the top: loads cloudpickle only where this runs
    from losstune.ray_jobs.cli import sweep_flags
    from losstune.ray_jobs.core.cluster import fit_to_cluster

    # no health stops: every trial does the same 3 epochs
    argv = ["hdr_patch", "--space", "caps", "--smoke-test", "--epochs", "3", "--trials", str(trials),
            "--set", "health.max_overflow_frac=1.0", *extra,
            "--search", "random", "--scheduler", "none", "--storage", scratch("throughput"), "--name", name]
    concurrency = fit_to_cluster(sweep_flags.make_plan(sweep_flags.parse_args(argv))).max_concurrent  # as run_sweep will
    table, history, wall = run_sweep(argv)
    compute = history.groupby("trial_id")["time/epoch_s"].sum().mean()
    return {"wall": wall, "compute": compute, "concurrency": concurrency, "achieved": trials / wall * 3600,
            "ideal": concurrency * 3600 / compute, "statuses": table["status"].value_counts().to_dict()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--quick", action="store_true", help="6 trials")
    args = p.parse_args()
    trials = 6 if args.quick else args.trials
    start_local_ray()
    measured = {path: throughput(trials, path.replace(" ", "_"), extra) for path, extra in TRIAL_PATHS.items()}
    print(f"{trials} trials of hdr_patch --smoke-test x 3 epochs per path ({machine()}):")
    for path, m in measured.items():
        print(f"  {path:13s}: {m['concurrency']} at a time, wall {m['wall']:.0f} s; trial compute mean {m['compute']:.2f} s; "
              f"{m['achieved']:.0f} trials/hour vs ideal {m['ideal']:.0f} ({m['achieved'] / m['ideal']:.1%} of ideal); "
              f"statuses {m['statuses']}")
    ratio = measured["trial process"]["achieved"] / measured["worker group"]["achieved"]
    print(f"trial process / worker group: {ratio:.1f}x the trials per hour")


if __name__ == "__main__":
    main()
