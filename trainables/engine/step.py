"""One optimiser step of a run, for every one of its optimiser groups: the weighted loss, the
finite check all workers agree on, the gradients of each group's own loss, SAM's second pass,
clipping, gradient noise, the optimisers and schedules, and the EMA of the weights. The loop
(engine/loop.py) calls it once per batch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate import Accelerator

from losstune.trainables.config import ConfigError
from losstune.trainables.engine import faults as test_faults
from losstune.trainables.engine.optim_tricks import GradientNoise, RngSnapshot, sam_ascent, sam_return
from losstune.trainables.engine.optimizer_groups import TrainedGroup
from losstune.trainables.family_api import Family


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


