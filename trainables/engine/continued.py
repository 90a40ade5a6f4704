"""A run that continues another run's checkpoint under its own config: what Population Based
Training asks when a trial exploits a better one (ray_jobs/search/schedulers.py). The weights, optimiser
moments, RNG, EMA and epoch come from the donor; the hyperparameters come from this run's config,
so the schedule changes mid-run: the LR schedule is rebuilt on this config's rates and set to the
step the donor reached, not restarted."""

from __future__ import annotations

import warnings

from losstune.trainables.engine.lr_schedules import make_lr_schedule


def load_donor_state(accelerator, directory: str) -> None:
    """Accelerate's load_state of another run's checkpoint, its LR schedules left out: the donor's
    may be of another shape (no warmup is a bare cosine, warmup a sequence of two; constant or
    cosine), whose state does not load into this run's, and `adopt_config` rebuilds them anyway.
    Accelerate loads the schedulers it has registered, so none are registered while it loads."""
    registered, accelerator._schedulers = accelerator._schedulers, []
    try:
        accelerator.load_state(directory)
    finally:
        accelerator._schedulers = registered


def schedule_position(accelerator, optimizer_steps: int) -> int:
    """Where a schedule stands after `optimizer_steps` steps: Accelerate steps a prepared scheduler
    once per process per optimiser step (once where batches are split)."""
    return optimizer_steps * (1 if accelerator.split_batches else accelerator.num_processes)


def optimizer_hyperparameters(groups) -> list[list[dict]]:
    """Every optimiser's param-group settings (lr, weight decay, betas, ...) as this run's config
    made them, without the parameters: taken before a donor's checkpoint overwrites them."""
    return [[{k: v for k, v in param_group.items() if k != "params"} for param_group in group.optimizer.param_groups]
            for group in groups]


def adopt_config(groups, own_hyperparameters: list[list[dict]], cfg, total_steps: int, position: int) -> None:
    """After loading a donor's checkpoint: put this run's optimiser settings back, and give each
    scheduled group a fresh LR schedule of this config, stepped to `position` (schedule_position).

    The donor's schedule state (its base rates, warmup and floor) is dropped: with Adam the moments
    carry over, the rates follow the new config from the current step on. A plateau group keeps
    its counters with this config's factor and patience; cuts the donor's plateau made are not
    carried (the rate is the new schedule's)."""
    for group, settings in zip(groups, own_hyperparameters):
        for param_group, values in zip(group.optimizer.param_groups, settings):
            param_group.update(values)
            param_group["lr"] = param_group.get("initial_lr", param_group["lr"])  # the schedule starts from the base
        if group.schedule is not None:
            group.schedule.scheduler = positioned_schedule(group, cfg, total_steps, position)
        if group.plateau is not None:
            group.plateau.factor, group.plateau.patience = cfg.schedule.plateau_factor, cfg.schedule.plateau_patience


def positioned_schedule(group, cfg, total_steps: int, position: int):
    """This config's LR schedule over the group's bare optimiser, stepped to `position`."""
    bare = getattr(group.optimizer, "optimizer", group.optimizer)
    schedule = make_lr_schedule(bare, cfg, total_steps)
    with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()": no step is taken here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(position - schedule.last_epoch):
            schedule.step()
    return schedule
