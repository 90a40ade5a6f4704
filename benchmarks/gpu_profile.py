"""python benchmarks/gpu_profile.py [--families hdr_patch npt] [--steps 30] [--set FAMILY:KEY=VALUE ...] [--trace DIR]

Only on a machine with a CUDA GPU (never part of CI). Why bf16 autocast ran slower than fp32 on an
H200 (benchmarks/README, 2026-11-26: 1.21-1.41x the fp32 step): per family at its default config,
the platform's own training step (trainables.engine.loop.set_up and run_epoch in a one-worker
TorchTrainer on 1 GPU, as a trial trains) under torch.profiler, fp32 against bf16:
  * wall ms per step, GPU busy ms per step (the union of the kernels' and copies' intervals) and
    the share of the step the GPU sits idle;
  * kernels launched per step;
  * the few kernels that take the most GPU time, per precision.
A step whose GPU sits idle most of the time is bound by the CPU that launches its kernels: there
autocast's casts add launches (and CPU work in the dispatcher) while the faster bf16 matrix
products save time the step never waited on.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine, scratch, start_local_ray  # noqa: E402
from losstune.trainables.config import merge
from losstune.trainables.registry import FAMILIES, load_family

WARMUP_STEPS = 5  # cuDNN's autotuning, the allocator's first blocks, lazy CUDA modules
TOP_KERNELS = 6


def gpu_activity(events) -> tuple[float, int, dict]:
    """(busy microseconds: the union of the intervals of the GPU's kernels and copies, kernels
    launched, {kernel name: total microseconds}) of a profile's events."""
    # here, not at the top: loads torch only where this runs
    from torch.autograd import DeviceType

    # Annotations on the GPU's timeline (the optimizer's "Optimizer.step#AdamW.step") span kernels
    # and the gaps between them: not work of their own.
    on_gpu = [e for e in events if e.device_type == DeviceType.CUDA and not e.is_user_annotation]
    intervals = sorted((e.time_range.start, e.time_range.end) for e in on_gpu)
    busy, reach = 0.0, float("-inf")
    for start, end in intervals:  # overlapping intervals (several streams) count once
        if end > reach:
            busy += end - max(start, reach)
            reach = end
    kernels = [e for e in on_gpu if not e.name.startswith(("Memcpy", "Memset"))]
    totals: dict = {}
    for e in kernels:
        totals[e.name] = totals.get(e.name, 0.0) + e.time_range.elapsed_us()
    return busy, len(kernels), totals


def profile_steps(family_name: str, overrides: dict, steps: int, trace_dir: str = "") -> dict:
    """In a training worker: the family's training step, `steps` of them after WARMUP_STEPS,
    under torch.profiler (the GPU's activity where there is one)."""
    # here, not at the top: loads torch, accelerate only where this runs
    import torch
    from torch.profiler import ProfilerActivity, profile

    from losstune.trainables.engine.loop import run_epoch, set_up

    gpu = torch.cuda.is_available()
    synchronize = torch.cuda.synchronize if gpu else (lambda: None)
    run, loader, _, _ = set_up(load_family(family_name), overrides)
    batches = itertools.cycle(loader)  # a short training set still gives `steps` steps
    step = run_epoch(run, itertools.islice(batches, WARMUP_STEPS), 0)[1]
    synchronize()
    with profile(activities=[ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * gpu) as prof:
        started = time.perf_counter()
        run_epoch(run, itertools.islice(batches, steps), step)
        synchronize()
        wall = time.perf_counter() - started
    if trace_dir:
        prof.export_chrome_trace(os.path.join(trace_dir, f"{family_name}_{run.cfg.train.mixed_precision}.json"))
    busy_us, kernels, totals = gpu_activity(prof.events())
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:TOP_KERNELS]
    return {"wall_ms": 1e3 * wall / steps, "busy_ms": busy_us / 1e3 / steps, "kernels": kernels / steps,
            "top": [(name, us / 1e3 / steps) for name, us in top]}


def profiled_run(family_name: str, overrides: dict, steps: int, folder: str, trace_dir: str = "",
                 gpus: float = 1.0) -> dict:
    """profile_steps in a one-worker TorchTrainer (1 CPU, `gpus` GPUs), as a trial trains."""
    # here, not at the top: loads torch, ray, pandas only where this runs
    import ray.train
    from ray.train.torch import TorchTrainer

    name = f"{family_name}_{overrides['train']['mixed_precision']}"
    result = os.path.join(folder, f"{name}.profile.json")

    def work(config: dict) -> None:
        with open(result, "w") as f:
            json.dump(profile_steps(**config), f)

    resources = {"CPU": 1, "GPU": gpus} if gpus else {"CPU": 1}
    TorchTrainer(work, train_loop_config={"family_name": family_name, "overrides": overrides, "steps": steps,
                                          "trace_dir": trace_dir},
                 scaling_config=ray.train.ScalingConfig(num_workers=1, use_gpu=gpus > 0, resources_per_worker=resources),
                 run_config=ray.train.RunConfig(name=name, storage_path=folder)).fit()
    with open(result) as f:
        return json.load(f)


def describe(precision: str, p: dict) -> str:
    idle = 1 - p["busy_ms"] / p["wall_ms"]
    return (f"  {precision}: step {p['wall_ms']:.2f} ms, GPU busy {p['busy_ms']:.2f} ms ({idle:.0%} idle), "
            f"{p['kernels']:.0f} kernels per step")


def main() -> None:
    # here, not at the top: loads torch only where this runs
    import torch

    from gpu import checked_changes

    p = argparse.ArgumentParser()
    p.add_argument("--families", nargs="+", default=["hdr_patch", "npt"], choices=sorted(FAMILIES))
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--set", action="append", default=[], metavar="FAMILY:KEY=VALUE",
                   help="a config change for one family, as the sweep's --set KEY=VALUE")
    p.add_argument("--trace", default="", metavar="DIR", help="also write a Chrome trace per run here")
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("benchmarks/gpu_profile.py: no CUDA GPU on this machine; run it on a GPU node")
    if args.steps < 1:
        sys.exit("benchmarks/gpu_profile.py: --steps must be at least 1")
    changes = checked_changes(args.families, args.set)
    start_local_ray()
    folder = scratch("gpu_profile")
    print(f"({machine()}), {args.steps} profiled steps after {WARMUP_STEPS} warm-up steps, one TorchTrainer per run")
    for name in args.families:
        runs = {}
        for precision in ("no", "bf16"):
            overrides = merge(changes[name], {"train": {"mixed_precision": precision}})
            runs[precision] = profiled_run(name, overrides, args.steps, folder, args.trace)
        fp32, bf16 = runs["no"], runs["bf16"]
        print(f"{name}: bf16/fp32 step {bf16['wall_ms'] / fp32['wall_ms']:.2f}, "
              f"GPU busy {bf16['busy_ms'] / fp32['busy_ms']:.2f}, kernels {bf16['kernels'] / fp32['kernels']:.2f}")
        for precision, label in (("no", "fp32"), ("bf16", "bf16")):
            print(describe(label, runs[precision]))
            for kernel, ms in runs[precision]["top"]:
                print(f"    {ms:7.3f} ms  {kernel[:110]}")


if __name__ == "__main__":
    main()
