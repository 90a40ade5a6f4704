"""python benchmarks/step_overhead.py [--family hdr_patch] [--epochs 6] [--repeats 5] [--quick]

Side by side in one run, for one family at its default config on this machine:
  * step time of a bare PyTorch loop (same model, batch, data, loss, clipping and schedule; one
    thread, as Ray gives a 1-CPU worker) in a fresh process with glibc's default allocator, as a
    user's own script runs, and of the platform (the family's trainable inside a TorchTrainer with
    Accelerate); both are whole-epoch time over steps, data loading included, median of epochs
    after the first. Run to run, this machine's step time drifts by several percent, more than the
    overhead itself, so the two alternate `--repeats` times and the figure is the median of the
    pairs' ratios (target <= 1.03), printed with their range;
  * the platform's epoch code (trainables.loop.run_epoch on Accelerate's prepared objects) against
    the bare loop on the family's model without Ray, epochs interleaved in one fresh process, which
    drifts far less than two runs apart: with glibc's default allocator, and with freed memory kept
    as the platform's workers keep it (trainables.worker_setup.keep_freed_memory), with each loop's page
    faults per epoch, alternating `--repeats` times;
  * what the platform's epoch code adds to each step, apart from Ray, in microseconds: the bare
    loop, trainables.loop.run_epoch on plain objects, and run_epoch on Accelerate's prepared ones,
    epochs interleaved in one process, on a stand-in model with as many parameter tensors as the
    family's in tiny layers. Its step is almost all fixed cost, measured to a few microseconds,
    where the real step's few-percent drift would hide a 1% cost;
  * the bare loop with DistributedDataParallel over a world of one vs without, interleaved: what a
    one-worker trial paid while Accelerate wrapped its model in DDP;
  * what reporting and checkpointing add per epoch, from the timeline marks of two platform runs
    (validation done -> report returned): one that reports without a checkpoint on every epoch
    but the last, one that checkpoints every epoch. Train's controller polls its workers as it does
    in a sweep (trainables/ray_workarounds.py); a report waits for that poll.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine, platform_run, read_timeline, scratch, start_local_ray  # noqa: E402
from losstune.trainables.ray_workarounds import poll_train_workers_often  # noqa: E402


def training_parts(family, cfg, epochs: int):
    """The family's model, its trainable parameters, AdamW, a shuffled loader and the LR schedule,
    as both loops below use them."""
    import torch

    from losstune.trainables.lr_schedules import make_lr_schedule

    torch.manual_seed(cfg.train.seed)
    parts = family.build(cfg)
    params = [p for p in parts.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                                  betas=(cfg.optim.beta1, cfg.optim.beta2))
    loader = torch.utils.data.DataLoader(parts.train_set, batch_size=cfg.train.batch_size, shuffle=True,
                                         drop_last=True, generator=torch.Generator().manual_seed(cfg.train.seed))
    scheduler = make_lr_schedule(optimizer, cfg, total_steps=epochs * len(loader))
    return parts.model, params, optimizer, loader, scheduler


def bare_epochs(family, cfg, epochs: int, wrap=lambda model: model):
    """Yields seconds per step of each epoch of the family's loss through a plain PyTorch loop:
    AdamW, clipping, the same LR schedule; `wrap` wraps the model (e.g. in DDP)."""
    import torch


    torch.set_num_threads(1)
    model, params, optimizer, loader, scheduler = training_parts(family, cfg, epochs)
    model = wrap(model)
    weights = family.term_weights(cfg)
    model.train()
    for _ in range(epochs):
        started = time.perf_counter()
        for batch in loader:
            terms, _ = family.loss_terms(model, batch, cfg)
            loss = sum(weights[k] * v for k, v in terms.items())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
            optimizer.step()
            scheduler.step()
        yield (time.perf_counter() - started) / len(loader)


def loop_epochs(family, cfg, epochs: int, prepare: bool = True):
    """Yields seconds per step of each epoch of the platform's own epoch (trainables.loop.run_epoch:
    health sums, finite check, Accelerate's backward and clipping) without Ray, on Accelerate's
    prepared model, optimiser, loader and scheduler or (`prepare=False`) on the plain ones."""
    from accelerate import Accelerator

    from losstune.trainables.loop import Run, run_epoch
    from losstune.trainables.optimizer_groups import TrainedGroup

    accelerator = Accelerator(cpu=True)
    model, params, optimizer, loader, scheduler = training_parts(family, cfg, epochs)
    if prepare:
        model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    step = 0
    for _ in range(epochs):
        started = time.perf_counter()
        group = TrainedGroup("model", optimizer, params, schedule=scheduler)
        _, step = run_epoch(Run(accelerator, model, [group], family, cfg), loader, step)
        yield (time.perf_counter() - started) / len(loader)


def bare_step_seconds(family, cfg, epochs: int) -> float:
    return statistics.median(list(bare_epochs(family, cfg, epochs))[1:])


def interleaved(loops: dict, epochs: int) -> tuple[dict, dict]:
    """Runs the loops' epochs (generators of seconds per step) in turn, their order reversed every
    other epoch so that neither always runs first; returns each loop's seconds per step and minor
    page faults, epoch by epoch."""
    seconds, faults = {name: [] for name in loops}, {name: [] for name in loops}
    for epoch in range(epochs):
        for name in (list(loops) if epoch % 2 == 0 else reversed(list(loops))):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            seconds[name].append(next(loops[name]))
            faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return seconds, faults


def median_ratio(numerators: list, denominators: list) -> float:
    """The median over epochs after the first of one loop's step time over another's."""
    return statistics.median(n / d for n, d in zip(numerators[1:], denominators[1:]))


def in_a_fresh_process(function, *args):
    """function(*args) in a new Python process, as a training worker is one: the heap of a
    long-lived process (this one) is laid out, and faults, differently."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def family_and_config(family_name: str, overrides: dict):
    from losstune.trainables.families import load_family, make_config

    family = load_family(family_name)
    return family, make_config(family, overrides)


def no_checkpoints(epochs: int) -> dict:
    return {"train": {"epochs": epochs, "checkpoint_every": 0}}


def bare_step_here(family_name: str, overrides: dict) -> float:
    family, cfg = family_and_config(family_name, overrides)
    return bare_step_seconds(family, cfg, cfg.train.epochs)


def epoch_code_here(family_name: str, overrides: dict, keep_memory: bool) -> dict:
    """The bare loop and run_epoch on prepared objects, epochs interleaved in this process
    (`keep_memory`: after trainables.worker_setup.keep_freed_memory): the median ratio of their epochs'
    step times and each loop's median page faults per epoch."""
    from losstune.trainables.worker_setup import keep_freed_memory

    if keep_memory and not keep_freed_memory():
        raise RuntimeError("this C library does not take glibc's mallopt settings")
    family, cfg = family_and_config(family_name, overrides)
    loops = {"bare": bare_epochs(family, cfg, cfg.train.epochs), "platform": loop_epochs(family, cfg, cfg.train.epochs)}
    seconds, faults = interleaved(loops, cfg.train.epochs)
    return {"ratio": median_ratio(seconds["platform"], seconds["bare"]),
            **{f"faults_{name}": statistics.median(f[1:]) for name, f in faults.items()}}


def stand_in(n_tensors: int):
    """A family of Linear(4, 4) layers with `n_tensors` parameter tensors (clipping, AdamW and
    Accelerate's wrappers loop over them) on 1,024 random pairs, two loss terms."""
    import torch

    def build(cfg):
        torch.manual_seed(cfg.train.seed)
        layers = [torch.nn.Linear(4, 4) for _ in range(n_tensors // 2)]  # a weight and a bias each
        if n_tensors % 2:
            layers.append(torch.nn.Linear(4, 4, bias=False))
        model = torch.nn.Sequential(*layers)
        return SimpleNamespace(model=model, train_set=torch.utils.data.TensorDataset(torch.randn(1024, 4),
                                                                                     torch.randn(1024, 4)))

    def loss_terms(model, batch, cfg):
        inputs, targets = batch
        error = model(inputs) - targets
        return {"mse": error.pow(2).mean(), "l1": error.abs().mean()}, {}

    from losstune.trainables.families import load_family

    # hdr_patch's other hooks are the contract's defaults (no combine, no per-step state)
    return dataclasses.replace(load_family("hdr_patch"), name="stand_in", build=build, loss_terms=loss_terms,
                               term_weights=lambda cfg: {"mse": 1.0, "l1": 0.5})


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


def ddp_of_one_ratio(family, cfg, epochs: int, folder: str) -> float:
    """The bare loop with its model in DistributedDataParallel over a world of one (gloo) vs plain,
    epochs interleaved in one process: what each one-worker trial paid while Accelerate wrapped
    its model in DDP (trainables/loop.py make_accelerator)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{folder}/ddp_rendezvous", rank=0, world_size=1)
    try:
        seconds, _ = interleaved({"plain": bare_epochs(family, cfg, epochs),
                                  "ddp": bare_epochs(family, cfg, epochs, DistributedDataParallel)}, epochs)
    finally:
        dist.destroy_process_group()
    return median_ratio(seconds["ddp"], seconds["plain"])


def report_seconds(marks: list[dict], pid: int, epochs: range) -> list[float]:
    """validation done -> report returned, per epoch of one worker process."""
    at = {(m["event"], m.get("epoch")): m["t"] for m in marks if m["pid"] == pid}
    return [at[("reported", e)] - at[("validated", e)] for e in epochs]


def worker_pid(marks: list[dict], run: str) -> int:
    return next(m["pid"] for m in marks if m["event"] == "loop_entered" and m["run"] == run)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--family", default="hdr_patch")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--repeats", type=int, default=5, help="bare / platform pairs, and fresh processes of each allocator")
    p.add_argument("--quick", action="store_true", help="4 epochs, 2 repeats")
    args = p.parse_args()
    epochs, repeats = (4, 2) if args.quick else (args.epochs, args.repeats)

    overrides = no_checkpoints(epochs)
    family, cfg = family_and_config(args.family, overrides)
    folder = scratch("step")
    # Ray's daemons run during both measurements; the two alternate so that drift hits both alike.
    start_local_ray(os.path.join(folder, "timeline.jsonl"))
    poll_train_workers_often()
    n_tensors, fixed = fixed_step_costs(family, cfg, 2 * epochs)
    ddp = ddp_of_one_ratio(family, cfg, 2 * epochs, folder)
    epoch_code = {False: [], True: []}  # keep_memory -> epoch_code_here's results
    pairs = []
    for i in range(repeats):
        for keep in ((False, True) if i % 2 == 0 else (True, False)):
            epoch_code[keep].append(in_a_fresh_process(epoch_code_here, args.family, no_checkpoints(2 * epochs), keep))
        bare = in_a_fresh_process(bare_step_here, args.family, overrides)
        reports = platform_run(args.family, overrides, folder, f"no_checkpoints_{i}")
        platform = statistics.median(cfg.train.batch_size / r["samples_per_s"] for r in reports[1:])
        pairs.append((bare, platform))
        print(f"repeat {i + 1}: bare {bare * 1e3:.1f} ms, platform {platform * 1e3:.1f} ms, ratio {platform / bare:.3f}; "
              f"epoch code vs bare in one process: glibc's default allocator {epoch_code[False][-1]['ratio']:.3f}, "
              f"freed memory kept {epoch_code[True][-1]['ratio']:.3f}", flush=True)
    platform_run(args.family, {"train": {"epochs": epochs, "checkpoint_every": 1}}, folder, "checkpoint_every_epoch")
    marks = read_timeline(os.environ["LOSSTUNE_TIMELINE"])
    ratios = [platform / bare for bare, platform in pairs]
    plain = report_seconds(marks, worker_pid(marks, "no_checkpoints_0"), range(1, epochs))  # the last checkpoints
    with_ckpt = report_seconds(marks, worker_pid(marks, "checkpoint_every_epoch"), range(1, epochs + 1))
    epoch_s = statistics.median(r["time/epoch_s"] for r in reports[1:])
    print(f"{args.family} default config, batch {cfg.train.batch_size}, {epochs} epochs, {repeats} pairs "
          f"(Train polls every {os.environ['RAY_TRAIN_HEALTH_CHECK_INTERVAL_S']} s; {machine()}):")
    bare_step = statistics.median(b for b, _ in pairs)
    print(f"step time  bare PyTorch {bare_step * 1e3:.1f} ms | platform (TorchTrainer + Accelerate) "
          f"{statistics.median(p for _, p in pairs) * 1e3:.1f} ms | ratio, median of pairs "
          f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}; target <= 1.03)")
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
          f"{(ours + accelerate) / bare_step:.2%} of the bare step above")
    print(f"DDP over a world of one vs the plain model (bare loop, epochs interleaved in one process; one-worker "
          f"trials no longer use DDP): ratio {ddp:.3f}")
    print(f"per epoch ({epoch_s:.2f} s of train + validation): report {statistics.median(plain) * 1e3:.0f} ms; "
          f"checkpoint + report {statistics.median(with_ckpt) * 1e3:.0f} ms "
          f"({statistics.median(with_ckpt) / epoch_s:.1%} of the epoch)")

if __name__ == "__main__":
    main()
