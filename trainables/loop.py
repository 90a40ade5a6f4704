"""The one train loop every family runs on every Ray Train worker.

Accelerate owns devices, mixed precision and DDP (never Ray's prepare_model alongside it);
Ray Train owns reporting and checkpoints. A family plugs in small functions by the contract in
trainables/family_api.py; `train_loop(family)` is what a TorchTrainer runs on every worker. Each
epoch ends in one flat metrics dict reported through `ray.train.report`, with a checkpoint every
`train.checkpoint_every` epochs. SAM, gradient noise
and an EMA of the weights are optimiser options every family has (trainables/optim_tricks.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import math
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict

import ray.train
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader

from losstune.trainables.config import ConfigError, check_precision
from losstune.trainables.families import make_config
from losstune.trainables.family_api import CHECKPOINT_SCORE, Family
from losstune.trainables.optim_tricks import GradientNoise, RngSnapshot, make_ema, sam_ascent, sam_return
from losstune.trainables.timeline import mark, process_started_at

GRAD_NORM_RANGE = (1e-5, 50.0)  # DESIGN "Health": norms outside this range flag a sick trial
STATE_FILE = "losstune_state.json"


def train_loop(family: Family):
    """The function a TorchTrainer runs on every worker: `train` for this family (one argument,
    the run's config overrides, as Ray Train calls it)."""
    return functools.partial(train, family)


def train(family: Family, overrides: dict) -> None:
    run = ray.train.get_context().get_experiment_name()  # the trial id, for the timeline
    mark("loop_entered", run=run, t_process=process_started_at())
    keep_freed_memory()
    cfg = make_config(family, overrides)
    check_precision(cfg.train, has_gpu=torch.cuda.is_available())
    accelerator = make_accelerator(cfg)
    set_seed(cfg.train.seed)  # the same on every worker: the family's data and the model's init
    mark("accelerator_ready")
    with matplotlib_hidden():
        parts = family.build(cfg)
    mark("data_and_model_built")
    train_loader, val_loader = make_loaders(parts, cfg)
    # A family may train some parameters (e.g. adaptive loss weights) with an optimiser of their
    # own, unscheduled and unclipped: `aux_optimizer(model, cfg)`.
    aux = family.aux_optimizer(parts.model, cfg)
    aux_ids = {id(p) for group in (aux.param_groups if aux else []) for p in group["params"]}
    params = [p for p in parts.model.parameters() if p.requires_grad and id(p) not in aux_ids]
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                                  betas=(cfg.optim.beta1, cfg.optim.beta2))
    # Counted on the unsharded loader: Accelerate steps a prepared scheduler once per process.
    scheduler = make_lr_schedule(optimizer, cfg, total_steps=cfg.train.epochs * len(train_loader))
    model, optimizer, train_loader, val_loader, scheduler = accelerator.prepare(
        parts.model, optimizer, train_loader, val_loader, scheduler)
    optimizers = (optimizer, accelerator.prepare(aux)) if aux else (optimizer,)
    # Checkpointed beside the model, in this order: the EMA weights, the plateau state, the
    # gradient noise's generator.
    ema = make_ema(accelerator.unwrap_model(model), cfg.optim.ema_decay) if cfg.optim.ema_decay else None
    plateau = make_plateau(optimizer, cfg, family.objective.mode) if cfg.schedule.kind == "plateau" else None
    opt = cfg.optim
    noise = (GradientNoise(opt.grad_noise_sigma, opt.grad_noise_decay, cfg.train.seed, accelerator.device)
             if opt.grad_noise_sigma else None)
    for extra in (ema, plateau, noise):
        if extra is not None:
            accelerator.register_for_checkpointing(extra)
    # From here each worker draws its own randomness (timesteps, noise, augmentation, dropout): with
    # one seed, N workers would draw the same and train like one that sees its noise N times.
    # Anything added after the gradients' all-reduce must stay the same on every worker (gradient
    # noise: its own generator, above), or the workers' weights would drift apart.
    set_seed(cfg.train.seed, device_specific=True)
    start_epoch, restarts, history = restore(accelerator)
    mark("prepared")
    if start_epoch >= cfg.train.epochs:
        # The run had finished before its trial was restarted (its sweep's driver died between the
        # last checkpoint and Tune recording the trial): report that end again, or Tune would get
        # no result at all and fail the whole sweep for a missing objective.
        ray.train.report(dict(history[-1] if history else {}, restarts=restarts))
        return
    step = start_epoch * len(train_loader)
    node = ray.get_runtime_context().get_node_id()[:12]  # which node trained it, for placement checks
    for epoch in range(start_epoch, cfg.train.epochs):
        epoch_started = time.perf_counter()
        if epoch + 1 == cfg.train.inject_crash_at_epoch and restarts == 0:
            raise RuntimeError(f"injected crash at epoch {epoch + 1} (train.inject_crash_at_epoch)")
        family.on_epoch_start(accelerator.unwrap_model(model), epoch, cfg)  # e.g. a curriculum
        stats, step = run_epoch(accelerator, model, optimizers, params, scheduler, train_loader, family, cfg, step,
                                ema, noise)
        metrics = epoch_metrics(stats, cfg, epoch, scheduler)
        if epoch == start_epoch or epoch + 1 == cfg.train.epochs or (epoch + 1) % cfg.train.val_every == 0:
            validation = evaluate(accelerator, ema.module if ema else model, val_loader, family, cfg, parts.extras)
            validation["val_epoch"] = epoch + 1
            if plateau is not None:
                plateau.step(validation[family.own_metric_name(family.objective.metric)])
        metrics.update(validation)
        mark("validated", epoch=epoch + 1)
        metrics.update({f"health/{name}": metrics[f"val/{name}"] for name in family.watched_val_metrics})
        metrics["stop_reason"] = stats["stop_reason"] or family.stop_reason(metrics, cfg)
        metrics["time/epoch_s"] = time.perf_counter() - epoch_started  # train + validation
        metrics.update({"restarts": restarts, "node": node})
        # a family may name its metrics as its seed does (e.g. medgen's Loss/MSE_val)
        metrics = {family.tags.get(name, name): value for name, value in metrics.items()}
        fresh = validation["val_epoch"] == epoch + 1
        metrics[CHECKPOINT_SCORE] = metrics[family.objective.metric] if fresh else math.nan
        history.append(metrics)
        report_epoch(accelerator, history, cfg, epoch, restarts)
        if metrics["stop_reason"]:
            break


def make_loaders(parts, cfg) -> tuple[DataLoader, DataLoader]:
    """The training loader (shuffled from train.seed, whole batches only) and the validation loader."""
    train_loader = DataLoader(parts.train_set, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True,
                              num_workers=cfg.train.num_data_workers,
                              generator=torch.Generator().manual_seed(cfg.train.seed))
    val_loader = DataLoader(parts.val_set, batch_size=cfg.train.batch_size, num_workers=cfg.train.num_data_workers)
    if len(train_loader) == 0:
        raise ConfigError("train.batch_size", f"is larger than the training set ({len(parts.train_set)} samples)")
    return train_loader, val_loader


def report_epoch(accelerator, history: list[dict], cfg, epoch: int, restarts: int) -> None:
    """Report an epoch's metrics (the last of `history`) to Ray Train, with a checkpoint every
    train.checkpoint_every epochs and at the run's last epoch (its end or an early stop), so a
    restarted trial resumes from there."""
    metrics = history[-1]
    last = epoch + 1 == cfg.train.epochs or bool(metrics["stop_reason"])
    every = cfg.train.checkpoint_every
    if last or (every and (epoch + 1) % every == 0):
        with tempfile.TemporaryDirectory() as tmp:
            save(accelerator, tmp, epoch + 1, restarts, history)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report(metrics)
    mark("reported", epoch=epoch + 1)


# What Ray Train sets in each worker for torch.distributed; Accelerate reads them to pick its mode
TORCH_DISTRIBUTED_ENV = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")


def make_accelerator(cfg) -> Accelerator:
    """Accelerate for this worker: distributed (DDP) when the run has several workers, else plain.

    Accelerate picks its distributed mode from LOCAL_RANK alone, which Ray Train sets in every
    worker, so a one-worker trial (every trial of a local sweep) would train a
    DistributedDataParallel model over a world of one: a gradient all-reduce that moves nothing,
    2.3% of an hdr_patch step here (benchmarks/step_overhead.py). With one worker the variables are
    hidden while Accelerate reads them; the gradients are the same either way."""
    alone = ray.train.get_context().get_world_size() == 1
    hidden = {name: os.environ.pop(name) for name in TORCH_DISTRIBUTED_ENV if alone and name in os.environ}
    try:
        return Accelerator(mixed_precision=cfg.train.mixed_precision, cpu=not torch.cuda.is_available())
    finally:
        os.environ.update(hidden)


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# Where glibc's adaptive thresholds end at most on 64-bit: blocks up to 32 MB from the heap, and
# the heap's top given back once 64 MB of it is free.
HEAP_BLOCKS_UP_TO, TRIM_ABOVE = 32 << 20, 64 << 20


def keep_freed_memory() -> bool:
    """Start glibc's malloc where its adaptive thresholds end; True if it took.

    By default glibc serves blocks over 128 KB with mmap and gives back what is freed at the top
    of its heap, and it raises both thresholds only as it sees mapped blocks freed. Meanwhile a
    training step, which frees and reallocates the same activations every time, faults its memory
    in again page by page: on hdr_patch 2,000-5,000 page faults an epoch, up to 3% of it in the
    kernel, and the platform's epoch 2.7-4.0% behind the bare loop instead of 0.9-2.0%
    (benchmarks/step_overhead.py). Setting either threshold also turns off the adaptive ones, so
    the mmap threshold goes first and the trim threshold only if it took: alone, it would leave
    every block over 128 KB to mmap. Other C libraries are left as they are."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl)
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, HEAP_BLOCKS_UP_TO) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_ABOVE))


@contextlib.contextmanager
def matplotlib_hidden():
    """Hides matplotlib while a family builds its parts, so the MONAI import this may start skips it.

    MONAI's first import loads every one of its modules, and with them matplotlib.pyplot for
    plotting helpers no trial calls: 0.4 s in a fresh process, 0.24-0.44 s of a trial's startup on
    2 cores (benchmarks/README.md). MONAI treats matplotlib as optional, so it imports without it. None in
    sys.modules is the import system's own "cannot be imported" marker; it is taken out again
    afterwards, so a later `import matplotlib` works. Where matplotlib is loaded already, nothing
    changes."""
    hide = "matplotlib" not in sys.modules
    if hide:
        sys.modules["matplotlib"] = None
    try:
        yield
    finally:
        if hide and sys.modules.get("matplotlib", "gone") is None:  # still our marker
            del sys.modules["matplotlib"]


def make_lr_schedule(optimizer, cfg, total_steps: int):
    """Linear warmup (a fraction of all steps, or `warmup_epochs`) into cosine decay or a
    constant rate (also for "plateau", whose cuts come from `make_plateau`)."""
    sched = cfg.schedule
    warmup = int(round(sched.warmup_frac * total_steps))
    if sched.warmup_epochs:
        warmup = min(total_steps, int(round(sched.warmup_epochs * total_steps / cfg.train.epochs)))
    if sched.kind == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, total_steps - warmup), eta_min=sched.eta_min_factor * cfg.optim.lr)
    else:
        main = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warmup == 0:
        return main
    ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=sched.warmup_start_factor, total_iters=warmup)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def make_plateau(optimizer, cfg, mode: str):
    """ReduceLROnPlateau on the family's objective, stepped after each validation. It scales the
    rate the per-step schedule leaves (warmup, then constant)."""
    sched = cfg.schedule
    inner = getattr(optimizer, "optimizer", optimizer)  # the torch optimizer under Accelerate's wrapper
    return torch.optim.lr_scheduler.ReduceLROnPlateau(inner, mode=mode, factor=sched.plateau_factor,
                                                      patience=sched.plateau_patience)


def run_epoch(accelerator, model, optimizers, params, scheduler, loader, family, cfg, step, ema=None, noise=None):
    """One pass over the training data. Returns (stats, global step).

    The loss is sum(weight x term), the weights from `family.term_weights(cfg)` (default: the
    config's loss.weights, one per term), or what `family.combine(model, weighted, cfg)` makes of
    the weighted terms (e.g. learned adaptive weights) with health stats of its own. With SAM the
    gradient is taken a second time at the perturbed weights, with the same random draws."""
    weights = family.term_weights(cfg)
    max_norm = cfg.optim.grad_clip or math.inf
    opt = cfg.optim
    # Running sums stay on the device as tensors: one host sync per step (the finite check), not
    # one per logged value.
    sums = defaultdict(float)
    steps = samples = 0
    grad_norm_max = torch.zeros((), device=accelerator.device)
    stop_reason = ""
    model.train()
    started = time.perf_counter()
    for batch in loader:
        # optimiser steps are counted here, once (not per SAM pass)
        family.on_step_start(accelerator.unwrap_model(model), step, cfg)
        step += 1
        draws = RngSnapshot(accelerator.device) if opt.sam_rho else None
        terms, weighted, total, health = weighted_loss(model, batch, family, cfg, weights)
        if step == cfg.train.inject_nan_at_step:
            total = total * float("nan")
        if not all_finite(accelerator, total):
            stop_reason = "nonfinite_loss"  # the step is skipped: weights stay as they were
            break
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        accelerator.backward(total)
        if opt.sam_rho:
            perturbation = sam_ascent(params, opt.sam_rho, opt.sam_adaptive)
            draws.restore()
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            accelerator.backward(weighted_loss(model, batch, family, cfg, weights)[2])
            sam_return(params, perturbation)
        grad_norm = accelerator.clip_grad_norm_(params, max_norm).detach()
        if noise is not None:
            noise.add(params, step - 1)
        for optimizer in optimizers:
            optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update_parameters(accelerator.unwrap_model(model))
        steps += 1
        if steps == 1:
            mark("first_step_done", step=step)
        samples += len(batch[0]) * accelerator.num_processes
        sums["grad_norm"] += grad_norm
        grad_norm_max = torch.maximum(grad_norm_max, grad_norm)
        sums["grad_out_of_range"] += ((grad_norm < GRAD_NORM_RANGE[0]) | (grad_norm > GRAD_NORM_RANGE[1])).float()
        sums["loss"] += total.detach()
        for name, value in terms.items():
            sums[name] += value.detach()
            sums["weighted/" + name] += weighted[name].detach()
        for name, value in health.items():
            sums["health/" + name] += value
    seconds = time.perf_counter() - started
    mark("epoch_steps_done", steps=steps)
    means = {name: float(value) / max(steps, 1) for name, value in sums.items()}
    return {
        "terms": {k: v for k, v in means.items() if not k.startswith(("health/", "grad_"))},
        "health": {k[len("health/"):]: v for k, v in means.items() if k.startswith("health/")},
        "grad_norm": means.get("grad_norm", 0.0),
        "grad_norm_max": float(grad_norm_max),
        "grad_out_of_range": means.get("grad_out_of_range", 0.0),
        "samples_per_s": samples / seconds if seconds > 0 else 0.0,
        "stop_reason": stop_reason,
    }, step




def weighted_loss(model, batch, family, cfg, weights):
    """(terms, weighted terms, total loss, health stats) of one batch."""
    terms, health = family.loss_terms(model, batch, cfg)
    unweighted = sorted(set(terms) - set(weights))
    if unweighted:  # a family whose loss_terms and term_weights disagree: say which, not KeyError
        raise ConfigError("loss.weights", f"has no weight for the {family.name} loss term(s) {', '.join(unweighted)}")
    weighted = {name: weights[name] * value for name, value in terms.items()}
    total, combined_health = family.combine(model, weighted, cfg)
    return terms, weighted, total, {**health, **combined_health}


def all_finite(accelerator, loss) -> bool:
    """Whether every worker's loss is finite: all must agree, or DDP's collectives would hang."""
    bad = torch.tensor(0.0 if torch.isfinite(loss.detach()).item() else 1.0, device=accelerator.device)
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, reduction="sum")
    return bad.item() == 0.0


def epoch_metrics(stats, cfg, epoch, scheduler) -> dict:
    terms = stats["terms"]
    metrics = {"epoch": epoch + 1}
    metrics.update({f"train/{name}": value for name, value in terms.items()})
    weighted = [abs(v) for k, v in terms.items() if k.startswith("weighted/")]
    metrics["lr"] = scheduler.get_last_lr()[0]
    metrics["grad_norm"] = stats["grad_norm"]
    metrics["grad_norm_max"] = stats["grad_norm_max"]
    metrics["samples_per_s"] = stats["samples_per_s"]
    metrics["peak_mem_mb"] = peak_memory_mb()
    if torch.cuda.is_available():  # seed 001's resource tags
        metrics.update({"VRAM/allocated_GB": torch.cuda.memory_allocated() / 2**30,
                        "VRAM/reserved_GB": torch.cuda.memory_reserved() / 2**30,
                        "VRAM/max_allocated_GB": torch.cuda.max_memory_allocated() / 2**30})
    metrics["health/nonfinite"] = float(stats["stop_reason"] == "nonfinite_loss")
    metrics["health/max_term_share"] = max(weighted) / sum(weighted) if weighted and sum(weighted) > 0 else 0.0
    metrics["health/grad_norm_out_of_range"] = stats["grad_out_of_range"]
    metrics.update({f"health/{name}": value for name, value in stats["health"].items()})
    return metrics


@torch.no_grad()
def evaluate(accelerator, model, loader, family, cfg, extras) -> dict:
    """Mean of each per-sample validation metric over the whole (all-worker) validation set;
    a family's `summarise_val(means, cfg)` may derive more from the means (e.g. pixel-weighted
    ratios from per-sample sums)."""
    model.eval()
    collected = defaultdict(list)
    for batch in loader:
        for name, values in family.val_metrics(model, batch, cfg, extras).items():
            collected[name].append(accelerator.gather_for_metrics(values.float()))
    means = {name: torch.cat(chunks).mean().item() for name, chunks in collected.items()}
    means = family.summarise_val(means, cfg)
    return {f"val/{name}": value for name, value in means.items()}


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's ru_maxrss is no good for it: a child process
    inherits its parent's peak across fork and exec (a worker would report its spawner's peak if
    that was higher); /proc's VmHWM is the process's own."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere; Linux reports KiB


def save(accelerator, directory: str, epochs_done: int, restarts: int, history: list[dict]) -> None:
    """Model, optimizer, scheduler, RNG (and grad scaler) through Accelerate, plus the epoch, the
    metrics reported with it, and every epoch's metrics so far (`history`, from which the results
    rebuild a trial whose reports Tune lost: ray_jobs.results.stored_history)."""
    accelerator.save_state(directory)
    if accelerator.is_main_process:
        with open(os.path.join(directory, STATE_FILE), "w") as f:
            json.dump({"epochs_done": epochs_done, "restarts": restarts, "metrics": history[-1], "history": history},
                      f, default=float)


def restore(accelerator) -> tuple[int, int, list[dict]]:
    """Load the latest reported checkpoint if this run has one.

    Returns (epoch to start at, restarts so far, the metrics of every epoch up to it): a run that
    resumes has been restarted once more than the checkpoint it resumes from, so lost workers and
    nodes are counted in the metrics."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return 0, 0, []
    with checkpoint.as_directory() as directory:
        accelerator.load_state(directory)
        with open(os.path.join(directory, STATE_FILE)) as f:
            state = json.load(f)
    history = state.get("history") or ([state["metrics"]] if state.get("metrics") else [])  # older checkpoints
    return state["epochs_done"], state.get("restarts", 0) + 1, history
