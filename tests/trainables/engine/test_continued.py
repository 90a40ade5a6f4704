"""A run continuing another run's checkpoint under its own config (PBT's exploit): the donor's
weights and Adam moments, this config's rates from the donor's step on."""

from types import SimpleNamespace

import torch
from accelerate import Accelerator

import pytest

from losstune.trainables.engine.continued import adopt_config, load_donor_state, optimizer_hyperparameters, schedule_position
from losstune.trainables.family_api import OptimizerGroup
from losstune.trainables.engine.loop_config import OptimConfig, ScheduleConfig, TrainConfig
from losstune.trainables.engine.optimizer_groups import prepared_group

TOTAL_STEPS = 40


def config(lr: float, warmup_frac: float, weight_decay: float = 1e-4, kind: str = "cosine"):
    return SimpleNamespace(optim=OptimConfig(lr=lr, weight_decay=weight_decay), train=TrainConfig(epochs=4),
                           schedule=ScheduleConfig(kind=kind, warmup_frac=warmup_frac, eta_min_factor=0.1))


def group_of(cfg, seed: int = 0):
    """A prepared AdamW group over a small linear model, with the config's schedule."""
    torch.manual_seed(seed)
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    group = prepared_group(accelerator, OptimizerGroup("model", optimizer), cfg, TOTAL_STEPS, "min")
    return accelerator, accelerator.prepare(model), group


def train(model, group, steps: int) -> None:
    for _ in range(steps):
        group.optimizer.zero_grad()
        model(torch.ones(4, 3)).pow(2).mean().backward()
        group.optimizer.step()
        group.schedule.step()


def lr_after(cfg, steps: int) -> float:
    """The rate a run of `cfg` has after `steps` steps from the start (the schedule alone)."""
    _, model, group = group_of(cfg)
    train(model, group, steps)
    return group.optimizer.param_groups[0]["lr"]


def test_a_continued_run_keeps_the_donors_state_and_follows_its_own_schedule_from_the_donors_step(tmp_path):
    donor_cfg, own_cfg = config(lr=1e-3, warmup_frac=0.1), config(lr=4e-3, warmup_frac=0.2, weight_decay=0.05)
    accelerator, donor_model, donor = group_of(donor_cfg)
    train(donor_model, donor, 6)  # past the donor's warmup (4 steps), inside the recipient's (8)
    accelerator.save_state(str(tmp_path))

    accelerator, model, group = group_of(own_cfg, seed=1)
    own = optimizer_hyperparameters([group])
    load_donor_state(accelerator, str(tmp_path))
    adopt_config([group], own, own_cfg, TOTAL_STEPS, schedule_position(accelerator, 6))

    assert torch.equal(model.weight, donor_model.weight)  # the donor's weights ...
    donor_moments = donor.optimizer.state[next(iter(donor_model.parameters()))]["exp_avg"]
    assert torch.equal(group.optimizer.state[next(iter(model.parameters()))]["exp_avg"], donor_moments)  # ... moments
    settings = group.optimizer.param_groups[0]
    assert settings["weight_decay"] == 0.05 and settings["initial_lr"] == 4e-3  # this run's settings
    # the rate: this config's schedule at step 6, not the donor's (1e-3-based) and not restarted
    assert settings["lr"] == lr_after(own_cfg, 6) != lr_after(donor_cfg, 6)
    assert group.schedule.scheduler.last_epoch == 6
    # and it goes on along this config's schedule
    train(model, group, 5)
    assert abs(group.optimizer.param_groups[0]["lr"] - lr_after(own_cfg, 11)) < 1e-12


@pytest.mark.parametrize("donor_cfg", [
    config(lr=1e-3, warmup_frac=0.0),  # no warmup: a bare cosine, where this run's is warmup then cosine
    config(lr=1e-3, warmup_frac=0.0, kind="constant"),
])
def test_a_donor_whose_schedule_has_another_shape_is_continued(tmp_path, donor_cfg):
    # seen in a PBT sweep: loading a bare cosine's state into a warmup-then-cosine sequence raised
    # KeyError '_schedulers', and the exploited trial failed
    own_cfg = config(lr=4e-3, warmup_frac=0.2)
    accelerator, donor_model, donor = group_of(donor_cfg)
    train(donor_model, donor, 6)
    accelerator.save_state(str(tmp_path))
    accelerator, model, group = group_of(own_cfg, seed=1)
    own = optimizer_hyperparameters([group])
    load_donor_state(accelerator, str(tmp_path))
    adopt_config([group], own, own_cfg, TOTAL_STEPS, schedule_position(accelerator, 6))
    assert torch.equal(model.weight, donor_model.weight)
    assert group.optimizer.param_groups[0]["lr"] == lr_after(own_cfg, 6)
