"""The latent_conditioner family's settings: its config sections with the seed's documented defaults,
its presets and its smoke-test sizes (the family's functions: trainables/families/latent_conditioner.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from losstune.trainables.config import ConfigError, above, at_least, within
from losstune.trainables.engine.loop_config import OptimConfig, ScheduleConfig, TrainConfig


@dataclass(frozen=True)
class DataConfig:
    path: str = ""  # directory of grayscale PNGs + latents.npz (names, y1, y2); "" = synthetic
    val_path: str = ""  # a second such directory; "" = the last `val_fraction` of `path`
    val_fraction: float = 0.2
    image_size: int = 256  # seed "Overview": 256x256 grayscale PNG
    num_train: int = 256  # synthetic only
    num_val: int = 64  # synthetic only
    seed: int = 0  # synthetic only; the validation set uses seed + 1

    def __post_init__(self):
        within("val_fraction", self.val_fraction, 0.01, 0.9)
        at_least("num_train", self.num_train, 1)
        at_least("num_val", self.num_val, 1)
        if self.image_size < 32 or self.image_size % 16:
            raise ConfigError("image_size", f"must be a multiple of 16 and >= 32, got {self.image_size}")


@dataclass(frozen=True)
class ModelConfig:
    filters: tuple[int, ...] = (32, 64, 128, 256)  # seed "Architecture Filters" (preset.txt)
    blocks_per_stage: int = 1  # seed diagram: one residual layer per filter width
    latent_dim_end: int = 32  # seed "Dual-Output": 32-d main latent
    latent_dim: int = 8  # seed: hierarchical latent 8 x size2
    size2: int = 4  # not in the seed; 4 makes 8 x size2 = 32, the dim its shared perceptual loss assumes
    encoder_dim: int = 256  # not in the seed: the head encoders' width (the pooled feature width)
    use_attention: bool = True  # seed "Spatial Attention: Enabled"
    se_reduction: int = 8  # seed "Optional Attention: SqueezeExcitation with reduction=8"
    drop_rate: float = 1e-13  # seed "Dropout Rate: 1e-13 (effectively disabled)"

    def __post_init__(self):
        if len(self.filters) < 1 or min(self.filters) < 1:
            raise ConfigError("filters", f"must list positive widths, got {list(self.filters)}")
        at_least("blocks_per_stage", self.blocks_per_stage, 1)
        at_least("latent_dim_end", self.latent_dim_end, 2)
        at_least("latent_dim", self.latent_dim, 1)
        at_least("size2", self.size2, 1)
        at_least("encoder_dim", self.encoder_dim, 1)
        at_least("se_reduction", self.se_reduction, 1)
        within("drop_rate", self.drop_rate, 0.0, 0.9)


@dataclass(frozen=True)
class LossWeights:
    main: float = 10.0  # seed "Current Loss Function": loss = A * 10 + B
    hier: float = 1.0
    mse: float = 1.0  # seed enhancement 1, multi-scale robust: mse 1.0
    mae: float = 0.1  # seed enhancement 1 (robust): mae 0.1
    huber: float = 0.05  # seed enhancement 1: huber 0.05 (beta 0.1)
    perceptual_main: float = 0.1  # seed enhancement 2: 0.1 * perceptual_loss_main
    perceptual_hier: float = 0.05  # seed enhancement 2: 0.05 * perceptual_loss_hier
    consistency: float = 0.1  # seed enhancement 3: consistency_weight=0.1
    spectral: float = 1e-4  # seed enhancement 4: reg_weight=1e-4

    def __post_init__(self):
        for name, value in self.__dict__.items():
            at_least(name, value, 0.0)
        above("main", self.main, 0.0)
        above("hier", self.hier, 0.0)
        above("mse", self.mse, 0.0)


@dataclass(frozen=True)
class Enhancements:
    """Seed "Training Loss Enhancement Proposals" 1-4, all off in the current training."""

    robust: bool = False  # 1: MAE + Huber next to MSE, and the adaptive hierarchical weight
    perceptual: bool = False  # 2: perceptual latent loss
    consistency: bool = False  # 3: consistency between original and augmented predictions
    spectral: bool = False  # 4: feature-map (Frobenius) regularisation


@dataclass(frozen=True)
class LossConfig:
    label_smooth: float = 0.0  # seed "Current Loss Function": label_smooth = 0.0 (disabled)
    huber_beta: float = 0.1  # seed enhancement 1: smooth_l1_loss(beta=0.1)
    adaptive_hier: bool = True  # seed enhancement 1: hier weight max(1, 0.5 * main / hier), with robust
    perceptual_hidden: tuple[int, ...] = (16, 8)  # seed enhancement 2: feature_layers=[16, 8]
    adaptive: Literal["none", "softmax", "uncertainty"] = "none"  # seed enhancement 5 (off now)
    adaptive_lr: float = 1e-3  # seed enhancement 5: Adam(adaptive_weighter.parameters(), lr=1e-3)
    adaptive_bound: float = 10.0  # not in the seed: uncertainty weights stay in [w / 10, 10 w]
    enhancements: Enhancements = field(default_factory=Enhancements)
    weights: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self):
        within("label_smooth", self.label_smooth, 0.0, 0.5)
        above("huber_beta", self.huber_beta, 0.0)
        above("adaptive_lr", self.adaptive_lr, 0.0)
        above("adaptive_bound", self.adaptive_bound, 1.0)
        if not self.perceptual_hidden or min(self.perceptual_hidden) < 1:
            raise ConfigError("perceptual_hidden", f"must list positive sizes, got {list(self.perceptual_hidden)}")


@dataclass(frozen=True)
class AugmentConfig:
    outline_p: float = 0.5  # seed "Outline-Preserving Augmentations (50% probability)"
    flip_p: float = 0.3  # seed: horizontal flip 30%
    max_shift_px: int = 1  # seed: +-1 pixel translation
    max_degrees: float = 5.0  # seed: +-5 degree rotation
    scale_min: float = 0.95  # seed: 0.95-1.05x scaling
    scale_max: float = 1.05
    mixup_p: float = 0.02  # seed "Mixup Augmentation (2% probability)"
    mixup_alpha: float = 0.2  # seed: alpha = 0.2
    noise_p: float = 0.05  # seed "Gaussian Noise Injection (5% probability)"
    noise_std: float = 0.01  # seed: randn_like(x) * 0.01

    def __post_init__(self):
        for name in ("outline_p", "flip_p", "mixup_p", "noise_p"):
            within(name, getattr(self, name), 0.0, 1.0)
        within("max_shift_px", self.max_shift_px, 0, 8)
        within("max_degrees", self.max_degrees, 0.0, 45.0)
        above("scale_min", self.scale_min, 0.0)
        at_least("scale_max", self.scale_max, self.scale_min)
        above("mixup_alpha", self.mixup_alpha, 0.0)
        at_least("noise_std", self.noise_std, 0.0)


@dataclass(frozen=True)
class HealthConfig:
    """Seed "Debugging and Monitoring / Warning Signs" as stops, each after `grace_epochs`."""

    grace_epochs: int = 2  # not in the seed: the epochs a trial may start unbalanced in
    max_val_train_ratio: float = 1000.0  # seed "Overfitting Detection": val/train > 1000 stops
    max_component_share: float = 0.9  # seed "Loss Imbalance: One component >90% of total loss"
    min_adaptive_weight: float = 0.01  # seed "Weight Collapse: Adaptive weights approach zero"; 0.01 is not
    # seed "Gradient Issues: Norms >50 or <1e-5 consistently" (the loop counts the steps outside
    # [1e-5, 50]); "consistently" read as most of an epoch's steps (not in the seed)
    max_bad_grad_share: float = 0.5

    def __post_init__(self):
        at_least("grace_epochs", self.grace_epochs, 0)
        above("max_val_train_ratio", self.max_val_train_ratio, 1.0)
        within("max_component_share", self.max_component_share, 0.5, 1.0)
        within("min_adaptive_weight", self.min_adaptive_weight, 0.0, 1.0)
        within("max_bad_grad_share", self.max_bad_grad_share, 0.0, 1.0)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    # seed "Optimization Setup": AdamW lr 1e-4, weight decay 1e-4; "Gradient Management": clip 10
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, weight_decay=1e-4, grad_clip=10.0))
    # seed: LinearLR(start_factor=0.01) over 100 of 10,000 epochs, then cosine to eta_min 1e-8
    # (= 1e-4 x lr): expressed as a share of the run so that short runs keep the same shape
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(
        kind="cosine", warmup_frac=0.01, warmup_start_factor=0.01, eta_min_factor=1e-4))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=32))  # seed: batch 32

    def __post_init__(self):
        if self.model.latent_dim_end % 2 or (self.model.latent_dim * self.model.size2) % 2:
            raise ConfigError("model.latent_dim_end", "and latent_dim x size2 must be even (the heads halve them)")


def _guideline(perceptual: float, consistency: float, spectral: float, adaptive: str) -> dict:
    """A seed "Configuration Guidelines" setting: the enhanced loop always uses the robust loss;
    its `perceptual_weight` multiplies both perceptual terms; an enhancement at weight 0 is off."""
    return {"loss": {
        "adaptive": adaptive,
        "enhancements": {"robust": True, "perceptual": perceptual > 0, "consistency": consistency > 0,
                         "spectral": spectral > 0},
        "weights": {"perceptual_main": perceptual, "perceptual_hier": perceptual, "consistency": consistency,
                    "spectral": spectral}}}


# `uncertainty` where the seed turns on its softmax weighter, which collapses (known bug 000)
PRESETS = {
    "small_dataset": _guideline(0.2, 0.15, 1e-3, "none"),  # seed: adaptive weighting "may overfit"
    "large_dataset": _guideline(0.1, 0.1, 1e-4, "uncertainty"),
    "high_resolution": {**_guideline(0.05, 0.0, 1e-5, "uncertainty"), "data": {"image_size": 512}},
}

SMOKE = {"data": {"num_train": 32, "num_val": 16, "image_size": 32}, "train": {"epochs": 2, "batch_size": 16},
         "model": {"filters": [8, 16], "encoder_dim": 32}}
