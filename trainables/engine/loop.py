"""The one train loop every family runs, on every Ray Train worker or in this process.

Accelerate owns devices, mixed precision and DDP (never Ray's prepare_model alongside it); the
run's session owns reporting and checkpoints (trainables/engine/session.py: Ray Train's in a trial,
trainables/engine/ray_session.py; LocalSession in tests and notebooks), so nothing here imports Ray. A
family plugs in small functions by the contract in trainables/family_api.py, among them its
optimiser groups: one AdamW by default, or several, each over its own parameters and minimising the
whole loss or named terms (a GAN's generator and discriminator), with the run's LR schedule and
clipping or without. Each epoch ends in one flat metrics dict, under the loop's own names, reported
through the session. SAM, gradient noise and an EMA of the weights are optimiser options every
family has (trainables/engine/optim_tricks.py).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader

from losstune.trainables.engine import faults as test_faults
from losstune.trainables.engine.checkpoints import report_epoch, restore
from losstune.trainables.config import ConfigError
from losstune.trainables.engine.continued import adopt_config, optimizer_hyperparameters, schedule_position
from losstune.trainables.engine.epoch_metrics import epoch_metrics, evaluate
from losstune.trainables.family_api import make_config
from losstune.trainables.family_api import Family
from losstune.trainables.engine.loop_config import check_precision
from losstune.trainables.engine.optim_tricks import GradientNoise, RngSnapshot, make_ema, sam_ascent, sam_return
from losstune.trainables.engine.optimizer_groups import TrainedGroup, prepare_groups
from losstune.trainables.engine.session import LocalSession, Session
from losstune.trainables.engine.timeline import mark, process_started_at
from losstune.trainables.engine.worker_setup import (ShuffleOrder, keep_freed_memory, make_accelerator, make_loaders,
                                              monai_extras_hidden)

GRAD_NORM_RANGE = (1e-5, 50.0)  # DESIGN "Health": norms outside this range flag a sick trial


@dataclass
class Run:
    """What one worker's run holds from step to step."""

    accelerator: Accelerator
    model: torch.nn.Module
    groups: list[TrainedGroup]
    family: Family
    cfg: Any
    total_steps: int = 0  # optimiser steps of the whole run, as its LR schedules count them
    ema: Any = None  # an EMA of the weights, validated in their place
    noise: GradientNoise | None = None
    faults: dict = field(default_factory=dict)  # test hooks (trainables/engine/faults.py)

    @property
    def clipped_params(self) -> list:
        """The parameters SAM, gradient noise and the grad-norm health stats cover."""
        return [p for group in self.groups if group.clipped for p in group.params]


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
        family.on_epoch_start(run.accelerator.unwrap_model(run.model), epoch, cfg)  # e.g. a curriculum
        stats, step = run_epoch(run, train_loader, step)
        if epoch == start_epoch or epoch + 1 == cfg.train.epochs or (epoch + 1) % cfg.train.val_every == 0:
            validation = dict(evaluate(run, val_loader, extras), val_epoch=epoch + 1)
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
    means = {name: float(value) / max(steps, 1) for name, value in sums.items()}
    return {
        "terms": {k: v for k, v in means.items() if not k.startswith(("health/", "grad_"))},
        "health": {k[len("health/"):]: v for k, v in means.items() if k.startswith("health/")},
        "grad_norms": {"grad_norm": 0.0, **{k: v for k, v in means.items() if k.startswith("grad_norm")}},
        "grad_norm_max": float(grad_norm_max),
        "grad_norm_maxima": {f"grad_norm_max/{name}": float(value) for name, value in other_maxima.items()},
        "grad_out_of_range": means.get("grad_out_of_range", 0.0),
        "samples_per_s": samples / seconds if seconds > 0 else 0.0,
        "stop_reason": stop_reason,
    }, step


def train_step(run: Run, batch, step: int, weights: dict):
    """One optimiser step of every group. Returns (terms, weighted terms, total, health stats,
    {group: gradient norm} of the clipped groups), or None where some worker's loss was not
    finite. With SAM the gradient is taken a second time at the perturbed weights, with the same
    random draws."""
    sam_rho = run.cfg.optim.sam_rho
    draws = RngSnapshot(run.accelerator.device) if sam_rho else None
    terms, weighted, total, health = weighted_loss(run.model, batch, run.family, run.cfg, weights)
    total = test_faults.poisoned(run.faults, step, total)
    if not all_finite(run.accelerator, total):
        return None
    active = backward(run, weighted, total)
    if sam_rho:
        params = run.clipped_params
        perturbation = sam_ascent(params, sam_rho, run.cfg.optim.sam_adaptive)
        draws.restore()
        backward(run, None, weighted_loss(run.model, batch, run.family, run.cfg, weights)[2])
        sam_return(params, perturbation)
    max_norm = run.cfg.optim.grad_clip or math.inf
    grad_norms = {g.name: run.accelerator.clip_grad_norm_(g.params, max_norm).detach()
                  for g in run.groups if g.clipped}
    if run.noise is not None:
        run.noise.add(run.clipped_params, step - 1)
    for group in run.groups:
        if group in active:
            group.optimizer.step()
        if group.schedule is not None:  # the schedule follows the run's steps, idle or not
            group.schedule.step()
    if run.ema is not None:
        run.ema.update_parameters(run.accelerator.unwrap_model(run.model))
    return terms, weighted, total, health, grad_norms


def backward(run: Run, weighted: dict | None, total) -> list[TrainedGroup]:
    """Gradients for every group: of the whole loss, in one pass, where every group minimises it;
    else each group's parameters get the gradient of its own terms' sum (and only those). Returns
    the groups that have a loss this step, the ones whose optimiser steps.

    A group none of whose terms this step computed (a GAN's discriminator before its start) is
    idle: its optimiser must not step, or AdamW would count steps it never saw and its first real
    updates, without their bias correction, would be several times too large. Under DDP its
    parameters still get a gradient (zero): DDP waits for every parameter's every step."""
    for group in run.groups:
        group.optimizer.zero_grad(set_to_none=True)
    if not any(group.terms for group in run.groups):
        run.accelerator.backward(total)
        return run.groups
    active = [group for group in run.groups if not group.terms or any(n in weighted for n in group.terms)]
    losses = [(group, sum(weighted[n] for n in group.terms if n in weighted) if group.terms else total)
              for group in active]
    if run.accelerator.num_processes > 1:
        losses += [(group, 0.0 * sum(p.sum() for p in group.params)) for group in run.groups if group not in active]
    for i, (group, loss) in enumerate(losses):
        run.accelerator.backward(loss, inputs=group.params, retain_graph=i + 1 < len(losses))
    return active


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


