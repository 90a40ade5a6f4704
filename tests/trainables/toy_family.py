"""A sixth family made by the contract alone (trainables/family_api.py), for the tests: what adding
a family takes is this one module (in the project: trainables/toy.py and search_spaces/toy.py)
and one line in search_spaces/registry.FAMILIES. A line fitted to noisy points; one loss term."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from ray import tune
from torch.utils.data import TensorDataset

from losstune.trainables.family_api import Objective, Parts
from losstune.trainables.engine.loop_config import OptimConfig, ScheduleConfig, TrainConfig

OBJECTIVE = Objective("val/mse", "min")


@dataclass(frozen=True)
class DataConfig:
    num_train: int = 64
    num_val: int = 16
    fail: bool = False  # the tests' switch: every run raises in `build`, a family whose trials all fail


@dataclass(frozen=True)
class LossWeights:
    mse: float = 1.0


@dataclass(frozen=True)
class LossConfig:
    weights: LossWeights = field(default_factory=LossWeights)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.05))
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2, batch_size=8))


PRESETS = {"strong": {"loss": {"weights": {"mse": 2.0}}}}
SMOKE = {"train": {"epochs": 2}}


def points(count: int, seed: int) -> TensorDataset:
    x = torch.randn(count, 1, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(x, 3 * x + 1 + 0.1 * torch.randn(count, 1, generator=torch.Generator().manual_seed(seed + 1)))


def check_data(cfg) -> int:
    return cfg.data.num_train


def build(cfg) -> Parts:
    if cfg.data.fail:
        raise RuntimeError("toy: data.fail is set")
    return Parts(torch.nn.Linear(1, 1), points(cfg.data.num_train, 0), points(cfg.data.num_val, 2), {})


def loss_terms(model, batch, cfg):
    x, y = batch
    return {"mse": torch.nn.functional.mse_loss(model(x), y)}, {}


def val_metrics(model, batch, cfg, extras):
    x, y = batch
    return {"mse": (model(x) - y).pow(2).mean(dim=1)}


def stop_reason(metrics, cfg) -> str:
    return ""


SPACES = {"weights": {"loss": {"weights": {"mse": tune.loguniform(0.5, 2.0)}}}}
DEFAULT_SPACE = "weights"
