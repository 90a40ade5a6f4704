"""The one train loop every family runs, on every Ray Train worker or in this process.

Accelerate owns devices, mixed precision and DDP (never Ray's prepare_model alongside it); the
run's session owns reporting and checkpoints (engine/session.py: Ray Train's in a worker group,
engine/ray_session.py; Tune's in a trial's own process, engine/tune_session.py; LocalSession in
tests and notebooks), so nothing here imports Ray. One optimiser step is engine/step.py. A
family plugs in small functions by the contract in trainables/family_api.py, among them its
optimiser groups: one AdamW by default, or several, each over its own parameters and minimising the
whole loss or named terms (a GAN's generator and discriminator), with the run's LR schedule and
clipping or without. Each epoch ends in one flat metrics dict, under the loop's own names, reported
through the session. SAM, gradient noise and an EMA of the weights are optimiser options every
family has (engine/optim_tricks.py).
"""

from __future__ import annotations

import time
from collections import defaultdict

import torch
from accelerate.utils import set_seed
from torch.utils.data import DataLoader

from losstune.trainables.engine import faults as test_faults
from losstune.trainables.engine.checkpoints import report_epoch, restore
from losstune.trainables.engine.continued import adopt_config, optimizer_hyperparameters, schedule_position
from losstune.trainables.engine.epoch_metrics import epoch_metrics, evaluate
from losstune.trainables.engine.loop_config import check_precision
from losstune.trainables.engine.optim_tricks import GradientNoise, make_ema
from losstune.trainables.engine.optimizer_groups import prepare_groups
from losstune.trainables.engine.session import LocalSession, Session
from losstune.trainables.engine.step import Run, train_step
from losstune.trainables.engine.timeline import mark, process_started_at
from losstune.trainables.engine.worker_setup import (ShuffleOrder, keep_freed_memory, make_accelerator, make_loaders,
                                                     monai_extras_hidden)
from losstune.trainables.family_api import Family, make_config


GRAD_NORM_RANGE = (1e-5, 50.0)  # gradient norms outside this range flag a sick trial (not a stop)


def train(family: Family, overrides: dict, session: Session | None = None) -> None:
    """Train one run of `family` with the config `overrides`, reporting each epoch to `session`
    (a LocalSession in this process by default), resuming from its latest checkpoint if it has one,
    else from its donor's (PBT) if it has one."""
    session = session if session is not None else LocalSession()
    run_name = session.run_name
    mark("loop_entered", run=run_name, t_process=process_started_at())
    run, train_loader, val_loader, extras = set_up(family, overrides, session.world_size)
    cfg = run.cfg
    # this config's optimiser settings, before a donor's checkpoint (if any) overwrites them
    own_hyperparameters = optimizer_hyperparameters(run.groups)
    start_epoch, restarts, history, continued = restore(run.accelerator, session)
    if continued:  # another run's state under this run's config: PBT's exploit, then explore
        position = schedule_position(run.accelerator, start_epoch * len(train_loader))
        adopt_config(run.groups, own_hyperparameters, cfg, run.total_steps, position)
    mark("prepared")
    if start_epoch >= cfg.train.epochs:
        # The run had finished before its trial was restarted (its sweep's driver died between the
        # last checkpoint and Tune recording the trial): report that end again, or Tune would get
        # no result at all and fail the whole sweep for a missing objective.
        session.report(dict(history[-1] if history else {}, restarts=restarts))
        return
    step = start_epoch * len(train_loader)
    validation = {}
    for epoch in range(start_epoch, cfg.train.epochs):
        started = time.perf_counter()
        test_faults.crash_if_due(run.faults, epoch + 1, restarts)
        test_faults.sleep_if_due(run.faults, restarts)
        family.on_epoch_start(run.accelerator.unwrap_model(run.model), epoch, cfg)  # e.g. a curriculum
        stats, step = run_epoch(run, train_loader, step)
        if epoch == start_epoch or epoch + 1 == cfg.train.epochs or (epoch + 1) % cfg.train.val_every == 0:
            validation = dict(evaluate(run, val_loader, extras, epoch + 1), val_epoch=epoch + 1)
            for group in run.groups:
                if group.plateau is not None:
                    group.plateau.step(validation[family.objective_of(cfg).metric])
        mark("validated", epoch=epoch + 1)
        metrics = epoch_metrics(run, stats, epoch, validation)
        metrics.update({"time/epoch_s": time.perf_counter() - started, "restarts": restarts,  # train + validation
                        "node": session.node,  # for placement checks
                        "run": run_name})  # the Train run that trained this epoch: a PBT trial's lineage
        history.append(metrics)
        report_epoch(session, run.accelerator, history, cfg, epoch, restarts, family.name)
        if metrics["stop_reason"]:
            break


def set_up(family: Family, overrides: dict, world_size: int = 1) -> tuple[Run, DataLoader, DataLoader, dict]:
    """This worker's run: config, Accelerate, the family's data and model, its optimiser groups
    with their schedules, and the EMA, plateau and noise state, all prepared and registered for
    checkpoints. Returns (run, training loader, validation loader, the family's extras)."""
    keep_freed_memory()
    cfg = make_config(family, overrides)
    check_precision(cfg.train, has_gpu=torch.cuda.is_available())
    accelerator = make_accelerator(cfg, world_size)
    set_seed(cfg.train.seed)  # the same on every worker: the family's data and the model's init
    mark("accelerator_ready")
    with monai_extras_hidden():
        parts = family.build(cfg)
    mark("data_and_model_built")
    train_loader, val_loader = make_loaders(parts, cfg)
    shuffle = ShuffleOrder(train_loader.generator)  # the generator Accelerate's prepared loader keeps using
    # Counted on the unsharded loader: Accelerate steps a prepared scheduler once per process.
    total_steps = cfg.train.epochs * len(train_loader)
    model, train_loader, val_loader = accelerator.prepare(parts.model, train_loader, val_loader)
    groups = prepare_groups(accelerator, family, family.optimizer_groups(parts.model, cfg), cfg, total_steps)
    run = Run(accelerator, model, groups, family, cfg, total_steps=total_steps, faults=test_faults.injected(cfg))
    opt = cfg.optim
    run.ema = make_ema(accelerator.unwrap_model(model), opt.ema_decay) if opt.ema_decay else None
    run.noise = (GradientNoise(opt.grad_noise_sigma, opt.grad_noise_decay, cfg.train.seed, accelerator.device)
                 if opt.grad_noise_sigma else None)
    # Checkpointed beside the model, in this order: the EMA weights, each plateau, the noise's
    # generator, the training data's order.
    for extra in (run.ema, *(g.plateau for g in groups), run.noise, shuffle):
        if extra is not None:
            accelerator.register_for_checkpointing(extra)
    # From here each worker draws its own randomness (timesteps, noise, augmentation, dropout): with
    # one seed, N workers would draw the same and train like one that sees its noise N times.
    # Anything added after the gradients' all-reduce must stay the same on every worker (gradient
    # noise: its own generator, above), or the workers' weights would drift apart.
    set_seed(cfg.train.seed, device_specific=True)
    return run, train_loader, val_loader, parts.extras


def run_epoch(run: Run, loader, step: int) -> tuple[dict, int]:
    """One pass over the training data. Returns (stats, global step).

    The loss is sum(weight x term), the weights from `family.term_weights(cfg)` (default: the
    config's loss.weights, one per term), or what `family.combine(model, weighted, cfg)` makes of
    the weighted terms (e.g. learned adaptive weights) with health stats of its own."""
    family, cfg = run.family, run.cfg
    weights = family.term_weights(cfg)
    # Running sums stay on the device as tensors: one host sync per step (the finite check), not
    # one per logged value.
    sums = defaultdict(float)
    steps = samples = 0
    grad_norm_max = torch.zeros((), device=run.accelerator.device)
    other_maxima = {}  # the other clipped groups' largest norms
    stop_reason = ""
    run.model.train()
    started = time.perf_counter()
    for batch in loader:
        # optimiser steps are counted here, once (not per SAM pass)
        family.on_step_start(run.accelerator.unwrap_model(run.model), step, cfg)
        step += 1
        outcome = train_step(run, batch, step, weights)
        if outcome is None:
            stop_reason = "nonfinite_loss"  # the step is skipped: weights stay as they were
            break
        terms, weighted, total, health, grad_norms = outcome
        steps += 1
        if steps == 1:
            mark("first_step_done", step=step)
        samples += len(batch[0]) * run.accelerator.num_processes
        grad_norm = grad_norms.pop(run.groups[0].name)
        grad_norm_max = torch.maximum(grad_norm_max, grad_norm)
        for name, norm in grad_norms.items():
            other_maxima[name] = torch.maximum(other_maxima.get(name, norm), norm)
        sums["grad_out_of_range"] += ((grad_norm < GRAD_NORM_RANGE[0]) | (grad_norm > GRAD_NORM_RANGE[1])).float()
        sums["loss"] += total.detach()
        for prefix, values in (("", terms), ("weighted/", weighted), ("health/", health),
                               ("grad_norm", {"": grad_norm}), ("grad_norm/", grad_norms)):
            for name, value in values.items():
                sums[prefix + name] += value.detach() if torch.is_tensor(value) else value
    seconds = time.perf_counter() - started
    mark("epoch_steps_done", steps=steps)
    stats = epoch_stats({name: float(value) / max(steps, 1) for name, value in sums.items()}, grad_norm_max,
                        other_maxima)
    return {**stats, "samples_per_s": samples / seconds if seconds > 0 else 0.0, "stop_reason": stop_reason}, step


def epoch_stats(means: dict, grad_norm_max, other_maxima: dict) -> dict:
    """An epoch's means per step, sorted into loss terms, health stats and gradient norms."""
    return {
        "terms": {k: v for k, v in means.items() if not k.startswith(("health/", "grad_"))},
        "health": {k[len("health/"):]: v for k, v in means.items() if k.startswith("health/")},
        "grad_norms": {"grad_norm": 0.0, **{k: v for k, v in means.items() if k.startswith("grad_norm")}},
        "grad_norm_max": float(grad_norm_max),
        "grad_norm_maxima": {f"grad_norm_max/{name}": float(value) for name, value in other_maxima.items()},
        "grad_out_of_range": means.get("grad_out_of_range", 0.0),
    }
