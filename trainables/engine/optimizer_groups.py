"""A run's optimiser groups as the loop steps them: each family's declared OptimizerGroups
(trainables/family_api.py) checked, prepared by Accelerate, and given their LR schedules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from losstune.trainables.config import ConfigError
from losstune.trainables.family_api import Family, FamilyError, OptimizerGroup
from losstune.trainables.engine.lr_schedules import make_lr_schedule, make_plateau


@dataclass(eq=False)  # one group is one optimiser: compared by identity
class TrainedGroup:
    """An optimiser group as the loop steps it: prepared by Accelerate, with its schedules."""

    name: str
    optimizer: Any
    params: list
    terms: tuple[str, ...] = ()  # empty: the whole loss
    clipped: bool = True
    schedule: Any = None  # the per-step LR schedule; None where the group is unscheduled
    plateau: Any = None  # ReduceLROnPlateau, for schedule.kind "plateau"


def prepare_groups(accelerator, family: Family, declared: list[OptimizerGroup], cfg,
                   total_steps: int) -> list[TrainedGroup]:
    """The declared groups, checked and prepared, each scheduled one with its own LR schedule over
    `total_steps` and, for schedule.kind "plateau", its plateau on the family's objective."""
    check_groups(family, declared, cfg)
    return [prepared_group(accelerator, group, cfg, total_steps, family.objective_of(cfg).mode) for group in declared]


def prepared_group(accelerator, group: OptimizerGroup, cfg, total_steps: int, mode: str) -> TrainedGroup:
    # the schedule is made on the bare optimiser, then both prepared: Accelerate's scheduler
    # wrapper steps with the optimisers prepared before it
    schedule = make_lr_schedule(group.optimizer, cfg, total_steps) if group.scheduled else None
    optimizer = accelerator.prepare(group.optimizer)
    plateau = make_plateau(optimizer, cfg, mode) if group.scheduled and cfg.schedule.kind == "plateau" else None
    return TrainedGroup(group.name, optimizer, [p for g in group.optimizer.param_groups for p in g["params"]],
                        group.terms, group.clipped, accelerator.prepare(schedule) if schedule else None, plateau)


def check_groups(family: Family, groups: list[OptimizerGroup], cfg) -> None:
    """Groups that do not overlap, the first one clipped (the model's), and SAM only where one loss
    is minimised: SAM's second pass would need a perturbation per loss."""
    where = f"family {family.name!r}: optimizer_groups"
    seen: set[int] = set()
    for group in groups:
        ids = {id(p) for g in group.optimizer.param_groups for p in g["params"]}
        if ids & seen:
            raise FamilyError(f"{where}: group {group.name!r} shares parameters with an earlier group")
        seen |= ids
    if not groups or not groups[0].clipped:
        raise FamilyError(f"{where}: the first group must be the model's, clipped (its gradient norm is the run's)")
    if cfg.optim.sam_rho and any(g.terms for g in groups):
        raise ConfigError("optim.sam_rho", f"is not supported by {family.name}, whose optimisers minimise separate losses")
