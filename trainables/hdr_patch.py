"""hdr_patch family (seed 004): config with the seed's documented values, and the functions the
shared loop calls. Defaults are the seed's *current* setting (section 1.4 / 6.1 "before"): Mode A,
abs_max 16, alpha 1.2, L1 log supervision weight 1, no clamp. Preset `phase1` is the seed's
recommended immediate fix (6.1 / 7.2); `phase2` adds its learnable output scale (6.2);
`phase3_adaptive` and `phase3_layernorm` are its research direction (7.2 Phase 3): the
input-conditioned scaler (6.3), or the output normalisation with the fixed x8 (5.2).

Objective: `val/log_l1`, the mean |log error| over every pixel of the repaired patch. A warped
frame's holes (radiance 0, log(eps) = -13.8) are part of the seed's pipeline and of the frame the
model outputs, so they count; a cap below their log distance to the target (about 14) cannot fill
them, which is the seed's own warning that small caps underfit dark content. Beside it every epoch
reports `val/log_l1_valid` (pixels the warp filled) and `val/log_l1_holes` (the hole mask's
pixels), pixel-weighted over the validation set, so a sweep shows which of the two a setting wins
or loses on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch.utils.data import TensorDataset

from losstune.data import hold_out
from losstune.trainables.config import ConfigError, above, at_least, merge, within
from losstune.trainables.loop_config import OptimConfig, ScheduleConfig, TrainConfig
from losstune.trainables.family_api import Objective, Parts

OBJECTIVE = Objective("val/log_l1", "min")
HOLE_CHANNEL = 3  # the input's hole mask (models/hdr_patch.py)
WATCHED_VAL_METRICS = ("overflow_frac",)  # also reported as health/overflow_frac


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

SMOKE = {"data": {"num_train": 64, "num_val": 32, "patch_size": 16}, "train": {"epochs": 2, "batch_size": 16},
         "model": {"channels": [8, 16]}}


def load_arrays(cfg):
    """(train inputs, train targets, val inputs, val targets) as numpy arrays."""
    from losstune.data.hdr_patch import load_patches, synthetic_patches

    d = cfg.data
    if not d.path:
        return (*synthetic_patches(d.num_train, d.patch_size, d.seed),
                *synthetic_patches(d.num_val, d.patch_size, d.seed + 1))
    inputs, targets = load_patches(d.path)
    if d.val_path:
        return (inputs, targets, *load_patches(d.val_path))
    return hold_out((inputs, targets), d.val_fraction, d.path, "patches")


def check_data(cfg) -> int:
    train_x, _, val_x, _ = load_arrays(cfg)
    for name, x in (("data.path", train_x), ("data.val_path", val_x)):
        if x.shape[1] != cfg.model.in_channels:
            raise ConfigError(name, f"has {x.shape[1]} input channels but model.in_channels is {cfg.model.in_channels}")
    return len(train_x)


def build(cfg) -> Parts:
    from losstune.models.hdr_patch import HDRPatchModel

    train_x, train_y, val_x, val_y = (torch.from_numpy(a) for a in load_arrays(cfg))
    m, caps = cfg.model, cfg.caps
    model = HDRPatchModel(
        in_channels=m.in_channels, channels=m.channels, num_res_units=m.num_res_units,
        mode=caps.mode, abs_max=caps.abs_max, alpha=caps.alpha, log_delta_scale=caps.log_delta_scale,
        eps=caps.eps, residual_scale=caps.residual_scale,
        clamp_value=caps.clamp_value if caps.clamp_enabled else None,
        output_norm=m.output_norm, learnable_scale=m.learnable_scale, scale_init=m.scale_init,
        scale_per_channel=m.scale_per_channel, adaptive_scaler=m.adaptive_scaler, scaler_range=(m.scaler_min, m.scaler_max),
    )
    # the data's HDR ceiling: predictions far above the brightest target are overflow
    ceiling = float(train_y.max()) * cfg.health.overflow_margin
    return Parts(model, TensorDataset(train_x, train_y), TensorDataset(val_x, val_y), {"ceiling": ceiling})


def loss_terms(model, batch, cfg):
    from losstune.losses.hdr import hdr_terms

    inputs, target = batch
    out = model(inputs)
    terms = hdr_terms(out, target, eps=cfg.caps.eps, kind=cfg.loss.log_supervision_type,
                      huber_delta=cfg.loss.huber_delta, safe_range=cfg.loss.safe_range)
    health = {"tanh_saturation": (out["tanh"].detach().abs() > 0.99).float().mean()}
    return terms, {**health, **scale_readings(out["cap"].detach(), cfg.model)}


def scale_readings(cap: torch.Tensor, m: ModelConfig) -> dict:
    """What the seed asks to monitor where the cap is learnt: the learnable residual_output_scale
    ("should stabilize around 4-8", 6.2), per channel where it has one per channel, or the
    adaptive scaler's mean over the batch's patches."""
    if m.learnable_scale:
        readings = {"residual_output_scale": cap.mean()}
        if m.scale_per_channel:
            readings.update({f"residual_output_scale_{c}": value for c, value in zip("rgb", cap.flatten())})
        return readings
    if m.adaptive_scaler:
        return {"adaptive_scale": cap.mean()}
    return {}


def val_metrics(model, batch, cfg, extras):
    """Per patch: the mean |log error| over all its pixels, the error summed over its filled and
    its hole pixels with their counts (pixel-weighted over the set by `summarise_val`), and the
    share of overflowing pixels."""
    inputs, target = batch
    out = model(inputs)
    log_target = torch.log(torch.clamp(target, min=0.0) + cfg.caps.eps)
    error = ((out["log_img"] + out["delta_log"]).float() - log_target).abs()
    holes = (inputs[:, HOLE_CHANNEL:HOLE_CHANNEL + 1] > 0.5).expand_as(error)
    pred = out["pred"].float()
    overflow = ~torch.isfinite(pred) | (pred > extras["ceiling"])
    return {
        "log_l1": error.flatten(1).mean(1),
        "log_l1_valid_sum": (error * ~holes).flatten(1).sum(1), "valid_count": (~holes).flatten(1).sum(1),
        "log_l1_holes_sum": (error * holes).flatten(1).sum(1), "holes_count": holes.flatten(1).sum(1),
        "overflow_frac": overflow.flatten(1).float().mean(1),
    }


def summarise_val(means: dict, cfg) -> dict:
    """The hole / non-hole split, pixel-weighted: a ratio of means of per-patch sums is the ratio
    of the sums. NaN where the validation set has no such pixel."""
    out = {"log_l1": means["log_l1"]}
    for part, count in (("valid", "valid_count"), ("holes", "holes_count")):
        out[f"log_l1_{part}"] = means[f"log_l1_{part}_sum"] / means[count] if means[count] > 0 else math.nan
    out["overflow_frac"] = means["overflow_frac"]
    return out


def stop_reason(metrics, cfg) -> str:
    past_grace = metrics["epoch"] > cfg.health.grace_epochs
    if past_grace and metrics["val/overflow_frac"] > cfg.health.max_overflow_frac:
        return "overflow"
    return ""
