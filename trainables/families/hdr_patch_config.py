"""The hdr_patch family's settings: its config sections with the seed's documented defaults,
its presets and its smoke-test sizes (the family's functions: trainables/families/hdr_patch.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from losstune.trainables.config import ConfigError, above, at_least, merge, within
from losstune.trainables.engine.loop_config import OptimConfig, ScheduleConfig, TrainConfig, unet_misfit


@dataclass(frozen=True)
class DataConfig:
    path: str = ""  # .npz with `input` and `target`; "" = synthetic patches
    val_path: str = ""  # held-out .npz; "" = the last `val_fraction` of `path`
    val_fraction: float = 0.2
    num_train: int = 512  # synthetic only
    num_val: int = 128  # synthetic only
    patch_size: int = 32  # synthetic only
    seed: int = 0  # synthetic only; the validation set uses seed + 1

    def __post_init__(self):
        within("val_fraction", self.val_fraction, 0.01, 0.9)
        at_least("num_train", self.num_train, 1)
        at_least("num_val", self.num_val, 1)
        if self.patch_size < 8 or self.patch_size % 4:
            raise ConfigError("patch_size", f"must be a multiple of 4 and >= 8, got {self.patch_size}")


@dataclass(frozen=True)
class ModelConfig:
    in_channels: int = 7  # seed 6.3: AdaptiveResidualScaler(in_channels=7)
    channels: tuple[int, ...] = (16, 32, 64)  # not in the seed: a small encoder-decoder
    num_res_units: int = 1  # not in the seed
    output_norm: bool = False  # seed 5.2 adaptive LayerNorm; not in the current setting
    learnable_scale: bool = False  # seed 5.1 / 6.2 learnable residual_output_scale
    scale_init: float = 6.0  # seed 6.2: "Initialized to 6.0 (safe default)"
    scale_per_channel: bool = False  # seed 5.1: "Per-channel: Can extend to 3 parameters for RGB"
    adaptive_scaler: bool = False  # seed 6.3 input-conditioned scale
    scaler_min: float = 2.0  # seed 6.3 clamp(min=2.0)
    scaler_max: float = 10.0  # seed 6.3 clamp(max=10.0)

    def __post_init__(self):
        at_least("in_channels", self.in_channels, 4)
        if len(self.channels) < 2 or min(self.channels) < 1:
            raise ConfigError("channels", f"must list >= 2 positive widths, got {list(self.channels)}")
        above("scale_init", self.scale_init, 0.0)
        above("scaler_min", self.scaler_min, 0.0)
        above("scaler_max", self.scaler_max, self.scaler_min)


@dataclass(frozen=True)
class CapsConfig:
    mode: Literal["A", "B"] = "A"  # seed 1.1: log_delta_abs_max > 0 selects Mode A (the current default)
    abs_max: float = 16.0  # seed 1.4 current log_delta_abs_max
    alpha: float = 1.2  # seed 1.4 current log_delta_alpha -> delta in [-19.2, 19.2]
    log_delta_scale: float = 0.9  # seed 1.1 Mode B / A.1 log_delta_scale
    eps: float = 1e-6  # seed 1.1 / A.1 log_epsilon
    residual_scale: float = 1.0  # the `scale` factor of seed 1.1 step 4
    clamp_enabled: bool = False  # seed 5.3 / 6.1 safety clamp; absent in the current setting
    clamp_value: float = 8.0  # seed 5.3 / 6.1: clamp(delta_log, -8, 8)

    def __post_init__(self):
        above("abs_max", self.abs_max, 0.0)
        above("alpha", self.alpha, 0.0)
        above("log_delta_scale", self.log_delta_scale, 0.0)
        within("eps", self.eps, 1e-12, 1e-2)
        above("residual_scale", self.residual_scale, 0.0)
        above("clamp_value", self.clamp_value, 0.0)


@dataclass(frozen=True)
class LossWeights:
    recon: float = 1.0  # seed 5.4: total_loss = recon_loss + ...
    log_supervision: float = 1.0  # seed 6.1 current log_supervision_weight (phase1: 2.0)
    sparsity: float = 0.0  # seed 5.4 A suggests 0.1; off in the current setting
    range: float = 0.0  # seed 5.4 B suggests 1.0; off in the current setting
    histogram: float = 0.0  # seed A.3 suggests 0.5; off in the current setting
    moment: float = 0.0  # seed 3.4 B; off in the current setting

    def __post_init__(self):
        for name, value in self.__dict__.items():
            at_least(name, value, 0.0)


@dataclass(frozen=True)
class LossConfig:
    log_supervision_type: Literal["l1", "huber"] = "l1"  # seed 6.1 current (phase1: huber)
    huber_delta: float = 0.2  # seed A.1 log_supervision_huber_delta
    safe_range: float = 6.0  # seed 5.4 B
    weights: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self):
        above("huber_delta", self.huber_delta, 0.0)
        above("safe_range", self.safe_range, 0.0)


@dataclass(frozen=True)
class HealthConfig:
    # A prediction above margin x the brightest training target (or non-finite) is overflow.
    overflow_margin: float = 10.0
    # A trial whose val/overflow_frac exceeds this after `grace_epochs` stops as "overflow".
    # Not 0: the seed's own default starts near 6% on the synthetic data and then recovers;
    # the results table shows every trial's overflow so "must stay 0" can be read off it.
    max_overflow_frac: float = 0.1
    grace_epochs: int = 1

    def __post_init__(self):
        above("overflow_margin", self.overflow_margin, 1.0)
        within("max_overflow_frac", self.max_overflow_frac, 0.0, 1.0)
        at_least("grace_epochs", self.grace_epochs, 0)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    caps: CapsConfig = field(default_factory=CapsConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)  # seed 004 documents no optimiser
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)  # nor a schedule
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        if self.caps.mode != "A":
            for name in ("learnable_scale", "adaptive_scaler"):
                if getattr(self.model, name):
                    raise ConfigError(f"model.{name}", "replaces Mode A's fixed cap and needs caps.mode 'A'")
        if self.model.learnable_scale and self.model.adaptive_scaler:
            raise ConfigError("model.adaptive_scaler", "cannot be combined with model.learnable_scale")
        if self.model.scale_per_channel and not self.model.learnable_scale:
            raise ConfigError("model.scale_per_channel", "is a form of the learnable scale: set model.learnable_scale")
        side = self.data.patch_size
        if not self.data.path and (why := unet_misfit((side,), self.model.channels, "model.channels")):
            raise ConfigError("data.patch_size", f"{side}: {side}x{side} patches {why}")


# seed 6.1 / 7.2 Phase 1: smaller cap, safety clamp, stronger Huber log supervision
PHASE1 = {
    "caps": {"abs_max": 6.0, "alpha": 1.0, "clamp_enabled": True, "clamp_value": 8.0},
    "loss": {"log_supervision_type": "huber", "huber_delta": 0.2, "weights": {"log_supervision": 2.0}},
}
PRESETS = {
    "phase1": PHASE1,
    # seed 6.2 / 7.2 Phase 2: Phase 1 plus the learnable output scale (init 6.0)
    "phase2": merge(PHASE1, {"model": {"learnable_scale": True, "scale_init": 6.0}}),
    # seed 7.2 Phase 3 on Phase 1's loss and clamp: the input-conditioned scale in [2, 10] (6.3) ...
    "phase3_adaptive": merge(PHASE1, {"model": {"adaptive_scaler": True}}),
    # ... or the output normalisation (5.2) before tanh, with its fixed x8
    "phase3_layernorm": merge(PHASE1, {"model": {"output_norm": True}, "caps": {"abs_max": 8.0, "alpha": 1.0}}),
}

# A smoke test's network is two epochs old: its overflow (0.16-0.17 of the pixels at epoch 2) says
# nothing of the settings, and judging it stopped every smoke sweep's trials, the default first. Its
# grace is the smoke run's epochs; a longer run (--epochs) is judged from epoch 3 on.
SMOKE = {"data": {"num_train": 64, "num_val": 32, "patch_size": 16}, "train": {"epochs": 2, "batch_size": 16},
         "model": {"channels": [8, 16]}, "health": {"grace_epochs": 2}}
