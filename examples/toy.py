"""losstune-sweep toy --smoke-test   (once this module is registered: docs/adding-a-family.md)

A complete family, the smallest there can be: a line fitted to noisy points, one loss term, two
search spaces. docs/adding-a-family.md walks through it; copy it into your own package to start
one. Everything a family provides is named in losstune.trainables.family_api; the names below
are the required ones, in the order the loop uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.data import TensorDataset

from losstune.trainables.config import at_least
from losstune.trainables.engine.loop_config import OptimConfig, ScheduleConfig, TrainConfig
from losstune.trainables.family_api import Objective, Parts

# What a sweep ranks trials by: `val/` + a key of val_metrics, averaged over the validation set.
# It must not depend on the tuned loss weights (a weighted loss would reward a small weight).
OBJECTIVE = Objective("val/mse", "min")


# --- Config: frozen dataclasses; each default names where it is documented ----------------------

@dataclass(frozen=True)
class DataConfig:
    num_train: int = 64  # points to fit
    num_val: int = 16
    noise: float = 0.1  # the points' noise sd around y = 3x + 1
    fail: bool = False  # every run raises in build: what a sweep whose trials all fail looks like

    def __post_init__(self):  # a bad value is one line naming the field (ConfigError), before Ray starts
        at_least("num_train", self.num_train, 1)
        at_least("num_val", self.num_val, 1)
        at_least("noise", self.noise, 0.0)


@dataclass(frozen=True)
class LossWeights:  # one float per loss term, named as loss_terms names the term
    mse: float = 1.0


@dataclass(frozen=True)
class LossConfig:
    weights: LossWeights = field(default_factory=LossWeights)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    # the three sections the shared loop reads, from losstune.trainables.engine.loop_config:
    # optimiser (rate, weight decay, clipping), learning-rate schedule, training (epochs, batch, seed)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.05))
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2, batch_size=8))


PRESETS = {"strong": {"loss": {"weights": {"mse": 2.0}}}}  # --preset strong; losstune-compare's labels
SMOKE = {"train": {"epochs": 2}}  # what --smoke-test lays over the config: a run of seconds


# --- data, model, loss ------------------------------------------------------------------------

def points(count: int, noise: float, seed: int) -> TensorDataset:
    x = torch.randn(count, 1, generator=torch.Generator().manual_seed(seed))
    y = 3 * x + 1 + noise * torch.randn(count, 1, generator=torch.Generator().manual_seed(seed + 1))
    return TensorDataset(x, y)


def check_data(cfg) -> int:
    """Read the configured data once, before Ray starts, and raise losstune.data.DataError naming
    the file where it is bad; returns the number of training samples (None where only a trial can
    count them). Generated data has nothing to read."""
    return cfg.data.num_train


def build(cfg) -> Parts:
    """The model (a pure nn.Module), the training and validation sets, and extras (anything
    val_metrics or model_metrics reuse; none here)."""
    if cfg.data.fail:
        raise RuntimeError("toy: data.fail is set")
    return Parts(torch.nn.Linear(1, 1), points(cfg.data.num_train, cfg.data.noise, 0),
                 points(cfg.data.num_val, cfg.data.noise, 2), {})


def loss_terms(model, batch, cfg):
    """Each term unweighted, under its name in loss.weights; the loop weighs and sums them. The
    second dict holds health statistics (scalar tensors) reported as health/<name>."""
    x, y = batch
    return {"mse": torch.nn.functional.mse_loss(model(x), y)}, {}


def val_metrics(model, batch, cfg, extras):
    """Per-sample tensors [B]: the loop averages each over the validation set and reports it as
    val/<key>."""
    x, y = batch
    return {"mse": (model(x) - y).pow(2).mean(dim=1)}


def stop_reason(metrics, cfg) -> str:
    """"" to go on, or why the run is clearly broken (a failure mode its documents warn of); the
    trial stops with that reason and is never the best. A line cannot break."""
    return ""


# --- search spaces: names are /-separated config paths -------------------------------------------

def weights(trial) -> None:
    trial.suggest_float("loss/weights/mse", 0.5, 2.0, log=True)  # each range holds the default (1.0)


def schedule(trial) -> None:
    trial.suggest_float("optim/lr", 0.005, 0.5, log=True)  # default 0.05


SPACES = {"weights": weights, "schedule": schedule}
DEFAULT_SPACE = "weights"
