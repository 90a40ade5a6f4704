"""python benchmarks/step_overhead.py [--family NAME ...] [--set KEY=VALUE ...] [--epochs 4] [--repeats 3] [--quick] [--worker-group] [--detail]

Step time of the platform against a bare PyTorch loop, for every family (or those named), at the
sizes in BENCH_SIZES (each family's documented default with less data, stated in the output;
--set changes them), side by side in one run on this machine:
  * a bare PyTorch loop (the same model, batch, data, loss, optimisers, clipping and schedules,
    written as a user would: plain objects, one thread, as Ray gives a 1-CPU trial) in a fresh
    process with glibc's default allocator, against the platform: a one-trial sweep of the family's
    documented default through the sweep's own code (a trial training in its own process, the
    default; --worker-group: in Train's worker group). Both are whole-epoch time over steps, data
    loading included, median of the epochs after the first. Step time drifts by several percent
    from run to run here, more than the overhead itself, so the two alternate `--repeats` times and
    the figure is the median of the pairs' ratios (target <= 1.03), printed with their range;
  * the bare loop with its model in DistributedDataParallel over a world of one against the plain
    model, epochs interleaved in one process: what a one-worker trial paid while Accelerate wrapped
    it in DDP. A group that is idle in a step (a GAN's discriminator before gan.start_epoch) gets a
    zero loss under DDP, as the platform's loop gives it: DDP waits for every parameter's gradient.
With --detail (one family), also:
  * the platform's epoch code (trainables.engine.loop.run_epoch on Accelerate's prepared objects)
    against the bare loop on the family's model without Ray, epochs interleaved in one fresh
    process, which drifts far less than two runs apart: with glibc's default allocator, and with
    freed memory kept as the platform's workers keep it (trainables.engine.worker_setup.keep_freed_memory),
    with each loop's page faults per epoch, alternating `--repeats` times;
  * what the platform's epoch code adds to each step, apart from Ray, in microseconds: the bare
    loop, run_epoch on plain objects, and run_epoch on Accelerate's prepared ones, epochs
    interleaved in one process, on a stand-in model with as many parameter tensors as the family's
    in tiny layers. Its step is almost all fixed cost, measured to a few microseconds, where the
    real step's few-percent drift would hide a 1% cost;
  * what reporting and checkpointing add per epoch, from the timeline marks of two platform runs
    (validation done -> report returned): one that never checkpoints, one that checkpoints every
    epoch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from step_loops import (bare_epochs, family_and_config, in_a_fresh_process, interleaved, loop_epochs,  # noqa: E402
                        median_ratio, stand_in)
from common import TRIAL_PATHS, as_set_flags, machine, read_timeline, run_sweep, scratch, start_local_ray  # noqa: E402
from losstune.trainables.config import flatten, merge  # noqa: E402
from losstune.trainables.engine.ray_workarounds import poll_train_workers_often  # noqa: E402
from losstune.ray_jobs.cli.flags import parse_set

# Each family's documented default with less data, so that a bare/platform pair runs in under two
# minutes on 2 cores; where one default step would take seconds on a CPU, a smaller image or width.
SMALL_MEDGEN = {"subjects": 4, "phantom_shape": [32, 32, 24], "image_size": 32}
BENCH_SIZES = {
    "hdr_patch": {},
    "latent_conditioner": {"data": {"image_size": 64, "num_train": 128, "num_val": 32}, "train": {"batch_size": 16}},
    "lgt": {"data": {"size": 16, "num_train": 64, "num_val": 16}, "train": {"batch_size": 8}},
    # the discriminator idle in the first epoch (measured epochs are the later ones), and no
    # perceptual term, whose ResNet-50 needs torchvision and weights this machine does not have
    "medgen_compression": {"data": SMALL_MEDGEN, "train": {"batch_size": 8}, "gan": {"start_epoch": 1},
                           "loss": {"weights": {"perceptual": 0.0}}},
    "medgen_diffusion": {"data": SMALL_MEDGEN, "train": {"batch_size": 8}, "model": {"widths": [32, 64, 64]}},
    "npt": {"data": {"num_train": 512, "num_val": 64}},
}


def bare_step_here(family_name: str, overrides: dict) -> float:
    family, cfg = family_and_config(family_name, overrides)
    return statistics.median(list(bare_epochs(family, cfg, cfg.train.epochs))[1:])


def ddp_of_one_here(family_name: str, overrides: dict, folder: str) -> float:
    """The bare loop with its model in DistributedDataParallel over a world of one (gloo) vs plain,
    epochs interleaved in one process: what each one-worker trial paid while Accelerate wrapped
    its model in DDP (trainables/engine/worker_setup.py make_accelerator)."""
    # here, not at the top: loads torch only where this runs
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    family, cfg = family_and_config(family_name, overrides)
    epochs = cfg.train.epochs
    dist.init_process_group("gloo", init_method=f"file://{folder}/ddp_rendezvous_{family_name}", rank=0, world_size=1)
    try:
        seconds, _ = interleaved({"plain": bare_epochs(family, cfg, epochs),
                                  "ddp": bare_epochs(family, cfg, epochs, DistributedDataParallel)}, epochs)
    finally:
        dist.destroy_process_group()
    return median_ratio(seconds["ddp"], seconds["plain"])


def platform_epochs(family_name: str, overrides: dict, folder: str, name: str, trial_path: list[str]) -> list[dict]:
    """A one-trial sweep of the family's documented default at `overrides`, through the sweep's own
    plan and Tuner (no scheduler, no confirmation); returns its epochs' reports."""
    trials, history, _ = run_sweep([family_name, "--trials", "1", "--scheduler", "none", "--confirm-top", "0",
                                    "--storage", folder, "--name", name, "-q", *trial_path, *as_set_flags(overrides)])
    reports = history.sort_values("epoch").to_dict("records")
    if len(reports) < 2:  # a health stop after the first epoch leaves no steady epoch to time
        raise RuntimeError(f"{family_name}'s platform run reported {len(reports)} epoch(s): {trials.iloc[0].to_dict()}")
    return reports


def step_pairs(family_name: str, overrides: dict, folder: str, repeats: int, trial_path: list[str]) -> list[tuple]:
    """(bare seconds per step, platform seconds per step), `repeats` pairs, their order alternating."""
    _, cfg = family_and_config(family_name, overrides)
    pairs = []
    for i in range(repeats):
        def platform():
            reports = platform_epochs(family_name, overrides, folder, f"{family_name}_{i}", trial_path)
            return statistics.median(cfg.train.batch_size / r["samples_per_s"] for r in reports[1:])

        def bare():
            return in_a_fresh_process(bare_step_here, family_name, overrides)

        first, second = (bare, platform) if i % 2 == 0 else (platform, bare)
        a, b = first(), second()
        pair = (a, b) if i % 2 == 0 else (b, a)
        pairs.append(pair)
        print(f"  {family_name} pair {i + 1}: bare {pair[0] * 1e3:.1f} ms, platform {pair[1] * 1e3:.1f} ms, "
              f"ratio {pair[1] / pair[0]:.3f}", flush=True)
    return pairs


def epoch_code_here(family_name: str, overrides: dict, keep_memory: bool) -> dict:
    """The bare loop and run_epoch on prepared objects, epochs interleaved in this process
    (`keep_memory`: after trainables.engine.worker_setup.keep_freed_memory): the median ratio of their epochs'
    step times and each loop's median page faults per epoch."""
    # here, not at the top: loads torch, accelerate only where this runs
    from losstune.trainables.engine.worker_setup import keep_freed_memory

    if keep_memory and not keep_freed_memory():
        raise RuntimeError("this C library does not take glibc's mallopt settings")
    family, cfg = family_and_config(family_name, overrides)
    loops = {"bare": bare_epochs(family, cfg, cfg.train.epochs), "platform": loop_epochs(family, cfg, cfg.train.epochs)}
    seconds, faults = interleaved(loops, cfg.train.epochs)
    return {"ratio": median_ratio(seconds["platform"], seconds["bare"]),
            **{f"faults_{name}": statistics.median(f[1:]) for name, f in faults.items()}}


def fixed_step_costs(family, cfg, epochs: int) -> tuple[int, dict]:
    """(parameter tensors, median seconds per step of the bare loop, of run_epoch on plain objects
    and of run_epoch on prepared ones) on a stand-in of the family's model, batches of 4, the
    three loops' epochs interleaved in one process."""
    n_tensors = sum(1 for p in family.build(cfg).model.parameters() if p.requires_grad)
    standin = stand_in(n_tensors)
    tiny = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=4))
    loops = {"bare": bare_epochs(standin, tiny, epochs), "plain": loop_epochs(standin, tiny, epochs, prepare=False),
             "prepared": loop_epochs(standin, tiny, epochs)}
    seconds, _ = interleaved(loops, epochs)
    return n_tensors, {name: statistics.median(values[1:]) for name, values in seconds.items()}


def report_seconds(marks: list[dict], epochs: range) -> list[float]:
    """validation done -> report returned, per epoch of one run's marks."""
    at = {(m["event"], m.get("epoch")): m["t"] for m in marks}
    return [at[("reported", e)] - at[("validated", e)] for e in epochs]


def detail(family_name: str, overrides: dict, epochs: int, repeats: int, bare_step: float, folder: str,
           trial_path: list[str]) -> None:
    """The in-process figures of --detail for one family (the module docstring)."""
    family, cfg = family_and_config(family_name, overrides)
    longer = merge(overrides, {"train": {"epochs": 2 * epochs}})
    n_tensors, fixed = fixed_step_costs(family, cfg, 2 * epochs)
    epoch_code = {False: [], True: []}  # keep_memory -> epoch_code_here's results
    for i in range(repeats):
        for keep in ((False, True) if i % 2 == 0 else (True, False)):
            epoch_code[keep].append(in_a_fresh_process(epoch_code_here, family_name, longer, keep))
    for keep, label in ((False, "glibc's default allocator"), (True, "freed memory kept, as in the platform's workers")):
        runs = epoch_code[keep]
        print(f"the platform's epoch code vs the bare loop, {2 * epochs} epochs interleaved in one fresh process, "
              f"{label}: median of {repeats} processes {statistics.median(r['ratio'] for r in runs):.3f} (range "
              f"{min(r['ratio'] for r in runs):.3f}-{max(r['ratio'] for r in runs):.3f}); page faults per epoch, "
              f"bare {statistics.median(r['faults_bare'] for r in runs):.0f}, "
              f"platform {statistics.median(r['faults_platform'] for r in runs):.0f}")
    ours, accelerate = fixed["plain"] - fixed["bare"], fixed["prepared"] - fixed["plain"]
    print(f"what the platform's epoch code adds per step, without Ray (stand-in: {n_tensors} parameter tensors in "
          f"Linear(4, 4) layers, batch 4; bare step {fixed['bare'] * 1e6:.0f} us): run_epoch's own {ours * 1e6:.0f} us "
          f"+ Accelerate's prepared objects {accelerate * 1e6:.0f} us = {(ours + accelerate) * 1e6:.0f} us, "
          f"{(ours + accelerate) / bare_step:.2%} of the bare step")
    per_epoch = {}
    for every in (0, 1):
        before = len(read_timeline(os.environ["LOSSTUNE_TIMELINE"]))
        reports = platform_epochs(family_name, merge(overrides, {"train": {"checkpoint_every": every}}), folder,
                                  f"{family_name}_checkpoint_every_{every}", trial_path)
        marks = read_timeline(os.environ["LOSSTUNE_TIMELINE"])[before:]
        per_epoch[every] = statistics.median(report_seconds(marks, range(1, epochs)))
    epoch_s = statistics.median(r["time/epoch_s"] for r in reports[1:])
    print(f"per epoch ({epoch_s:.2f} s of train + validation): report {per_epoch[0] * 1e3:.0f} ms; "
          f"checkpoint + report {per_epoch[1] * 1e3:.0f} ms ({per_epoch[1] / epoch_s:.1%} of the epoch)")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", action="append", choices=sorted(BENCH_SIZES),
                   help="a family to measure (repeatable; default: all six)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override on top of BENCH_SIZES, for every family measured (repeatable)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3, help="bare / platform pairs (and, --detail, fresh processes)")
    p.add_argument("--quick", action="store_true", help="3 epochs, 2 pairs")
    p.add_argument("--worker-group", action="store_true", help="measure trials that train in Train's worker group")
    p.add_argument("--detail", action="store_true", help="the in-process figures too (one --family)")
    args = p.parse_args()
    args.families = args.family or list(BENCH_SIZES)
    if args.detail and len(args.families) != 1:
        p.error("--detail: name one --family")
    args.overrides = parse_set(args.set)
    if args.quick:
        args.epochs, args.repeats = 3, 2
    return args


def main() -> None:
    args = parse_args()
    folder = scratch("step")
    trial_path = TRIAL_PATHS["worker group" if args.worker_group else "trial process"]
    # Ray's daemons run during both measurements; the two alternate so that drift hits both alike.
    start_local_ray(os.path.join(folder, "timeline.jsonl"))
    poll_train_workers_often()
    rows = []
    for name in args.families:
        sized = merge(BENCH_SIZES[name], args.overrides)
        overrides = merge(sized, {"train": {"epochs": args.epochs, "checkpoint_every": 0}})
        started = time.time()
        pairs = step_pairs(name, overrides, folder, args.repeats, trial_path)
        pair_s = (time.time() - started) / args.repeats
        ddp = in_a_fresh_process(ddp_of_one_here, name, merge(overrides, {"train": {"epochs": 2 * args.epochs}}), folder)
        ratios = [platform / bare for bare, platform in pairs]
        rows.append((name, sized, statistics.median(b for b, _ in pairs), statistics.median(p for _, p in pairs),
                     ratios, ddp, pair_s))
        if args.detail:
            detail(name, overrides, args.epochs, args.repeats, rows[-1][2], folder, trial_path)
    where = "its worker group" if args.worker_group else "its own process"
    print(f"\nstep time, platform (a one-trial sweep, the trial training in {where}) / bare PyTorch loop; "
          f"{args.epochs} epochs, {args.repeats} pairs; {machine()}; target <= 1.03")
    print("| family | size (overrides of the default) | bare ms | platform ms | ratio, median of pairs (range) "
          "| DDP of one / plain | s per pair |")
    print("|---|---|---|---|---|---|---|")
    for name, sized, bare, platform, ratios, ddp, pair_s in rows:
        size = ", ".join(f"{k}={json.dumps(v)}" for k, v in flatten(sized, ".").items()) or "default"
        print(f"| {name} | {size} | {bare * 1e3:.1f} | {platform * 1e3:.1f} | {statistics.median(ratios):.3f} "
              f"({min(ratios):.3f}-{max(ratios):.3f}) | {ddp:.3f} | {pair_s:.0f} |")


if __name__ == "__main__":
    main()
