"""The lgt family's settings: its config sections with the seed's documented defaults,
its presets and its smoke-test sizes (the family's functions: trainables/families/lgt.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from losstune.trainables.config import ConfigError, above, at_least, within
from losstune.trainables.engine.loop_config import (OptimConfig, ScheduleConfig, TrainConfig, check_unet_sizes,
                                                    unet_misfit)


@dataclass(frozen=True)
class DataConfig:
    path: str = ""  # .npz / .pt with latents [N, 4, H, W] and style_ids [N]; "" = synthetic
    val_path: str = ""  # a second such file; "" = the last `val_fraction` of each style in `path`
    val_fraction: float = 0.2
    num_styles: int = 4  # style ids are 0..num_styles-1; the flow adds one "null" style for CFG
    channels: int = 4  # seed: 4x32x32 latents
    size: int = 32  # synthetic only
    num_train: int = 480  # synthetic only: 10 batches of 48
    num_val: int = 96  # synthetic only
    seed: int = 0  # synthetic only; the validation set uses seed + 1

    def __post_init__(self):
        within("val_fraction", self.val_fraction, 0.01, 0.9)
        at_least("num_styles", self.num_styles, 2)  # transfer needs a style other than the source's
        at_least("channels", self.channels, 1)
        at_least("size", self.size, 8)
        at_least("num_train", self.num_train, self.num_styles)
        at_least("num_val", self.num_val, self.num_styles)


@dataclass(frozen=True)
class ModelConfig:
    """MONAI DiffusionModelUNet sizes; the seed names no architecture beyond a velocity network."""

    widths: tuple[int, ...] = (32, 64, 64)
    attention: tuple[bool, ...] = (False, True, True)
    res_blocks: int = 1
    norm_groups: int = 32
    head_channels: int = 32

    def __post_init__(self):
        check_unet_sizes(self)


@dataclass(frozen=True)
class FlowConfig:
    ode_steps: int = 4  # not in the seed ("longer ODE backprop"): Euler steps from t=0 to t=1
    method: Literal["euler", "midpoint"] = "euler"
    use_gradient_checkpointing: bool = True  # seed 4: NEW, true
    label_drop_prob: float = 0.15  # seed 4: 0.1 -> 0.15
    cfg_scale: float = 2.0  # seed 7.2: cfg_scale 2.0 (validation integrates with guidance)

    def __post_init__(self):
        at_least("ode_steps", self.ode_steps, 1)
        within("label_drop_prob", self.label_drop_prob, 0.0, 1.0)
        at_least("cfg_scale", self.cfg_scale, 1.0)


@dataclass(frozen=True)
class LossWeights:
    """w_style and w_content as a trade-off and a scale: w_style / w_content = exp(log_style_to_content),
    w_style + w_content = energy_scale. The seed gives no values: 1 and 1."""

    energy_scale: float = 2.0
    log_style_to_content: float = 0.0
    velocity: float = 0.01  # seed 7.1 (optional, off by default); its weight is not in the seed
    divergence: float = 0.01  # seed 7.3 (optional, off by default); its weight is not in the seed

    def __post_init__(self):
        above("energy_scale", self.energy_scale, 0.0)
        within("log_style_to_content", self.log_style_to_content, -10.0, 10.0)
        at_least("velocity", self.velocity, 0.0)
        at_least("divergence", self.divergence, 0.0)

    def style_and_content(self) -> tuple[float, float]:
        share = 1.0 / (1.0 + math.exp(-self.log_style_to_content))
        return self.energy_scale * share, self.energy_scale * (1.0 - share)


@dataclass(frozen=True)
class LossConfig:
    projections: int = 64  # not in the seed: random directions per SWD evaluation
    max_samples: int = 8192  # seed 2: SWD patches 4096 -> 8192
    stratified: bool = False  # seed 7.4 (future): sample patches per batch element
    max_spatial_samples: int = 256  # seed 2: SSM positions, NEW 256 (0 = all)
    use_velocity_reg: bool = False  # seed 7.1: L2 on the trajectory's velocities
    use_divergence_reg: bool = False  # seed 7.3: Hutchinson estimate of div v, squared
    weights: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self):
        at_least("projections", self.projections, 1)
        at_least("max_samples", self.max_samples, 2)
        at_least("max_spatial_samples", self.max_spatial_samples, 0)


@dataclass(frozen=True)
class EvalConfig:
    """Validation distances with fixed randomness, the same for every trial (not in the seed)."""

    projections: int = 128
    seed: int = 12345

    def __post_init__(self):
        at_least("projections", self.projections, 1)


@dataclass(frozen=True)
class HealthConfig:
    grace_epochs: int = 3  # an untrained flow is the identity (MONAI zero-initialises the output)
    max_identity_ratio: float = 0.99  # seed 6 "before": x1 as far from the target style as x_src was
    min_velocity_norm: float = 1e-4  # seed 6 "before": velocity collapse, v ~ 0

    def __post_init__(self):
        at_least("grace_epochs", self.grace_epochs, 0)
        above("max_identity_ratio", self.max_identity_ratio, 0.0)
        at_least("min_velocity_norm", self.min_velocity_norm, 0.0)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, grad_clip=1.0))  # seed 5: clip 1.0
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=48))  # seed 2: 240 -> 48

    def __post_init__(self):
        side = self.data.size
        if not self.data.path and (why := unet_misfit((side,), self.model.widths, "model.widths")):
            raise ConfigError("data.size", f"{side}: {side}x{side} latents {why}")


PRESETS = {
    "seed_before": {  # the seed's "before" caps and dropout (still with real style references)
        "train": {"batch_size": 240}, "flow": {"label_drop_prob": 0.1, "use_gradient_checkpointing": False},
        "loss": {"max_samples": 4096, "max_spatial_samples": 0}},
    "regularised": {"loss": {"use_velocity_reg": True, "use_divergence_reg": True}},  # seed 7.1 and 7.3
}

SMOKE = {"data": {"num_train": 32, "num_val": 16, "size": 16}, "train": {"epochs": 2, "batch_size": 8},
         "model": {"widths": [16, 16], "attention": [False, True], "norm_groups": 8, "head_channels": 8},
         "flow": {"ode_steps": 2}, "loss": {"projections": 16, "max_samples": 1024, "max_spatial_samples": 64},
         "eval": {"projections": 32}}
