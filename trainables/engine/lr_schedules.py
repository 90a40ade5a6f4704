"""The learning-rate schedules a run's config names (cfg.schedule), per optimiser."""

from __future__ import annotations

import torch


def make_lr_schedule(optimizer, cfg, total_steps: int):
    """Linear warmup (a fraction of all steps, or `warmup_epochs`) into cosine decay or a
    constant rate (also for "plateau", whose cuts come from `make_plateau`). The cosine floor is
    relative to this optimiser's own rate, so each optimiser of a family keeps its ratio."""
    sched = cfg.schedule
    base_lr = optimizer.param_groups[0]["lr"]
    warmup = int(round(sched.warmup_frac * total_steps))
    if sched.warmup_epochs:
        warmup = min(total_steps, int(round(sched.warmup_epochs * total_steps / cfg.train.epochs)))
    if sched.kind == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, total_steps - warmup), eta_min=sched.eta_min_factor * base_lr)
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
