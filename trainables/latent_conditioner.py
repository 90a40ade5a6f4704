"""latent_conditioner family (seed 000): SimulGenVAE's CNN latent conditioner, its current loss
and the seed's five loss enhancements, augmentations and schedule.

The default is the seed's *current* training ("Current Loss Function"): 10 * MSE(main) + 1 *
MSE(hier), every enhancement off (`loss.enhancements`); each enhancement's weight defaults to its
documented value and counts once the enhancement is on. The presets are the seed's
"Configuration Guidelines" (small dataset, large dataset, high resolution). Adaptive weighting is
`uncertainty` (Kendall et al. 2018, on top of the documented weights and bounded: each component's
weight moves at most `loss.adaptive_bound`-fold either way), which the presets use, or `softmax`
(the seed's, which collapses onto the smallest component: known bug 000), only when asked for.

Health (seed "Warning Signs"), each a stop after `health.grace_epochs`: one component over 90% of
the loss, an adaptive weight collapsed towards zero, gradient norms outside [1e-5, 50] on most
steps of an epoch, and val/train > 1000 (seed "Overfitting Detection"). TensorBoard files carry
the seed's names (`Enhanced_Loss/*`, `Adaptive_Weights/*`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch.utils.data import TensorDataset

from losstune.trainables.config import ConfigError, above, at_least, within
from losstune.trainables.loop_config import OptimConfig, ScheduleConfig, TrainConfig
from losstune.data import hold_out
from losstune.trainables.family_api import Objective, OptimizerGroup, Parts, adamw

OBJECTIVE = Objective("val/latent_mse", "min")
WATCHED_VAL_METRICS = ()
# each loss weight whose term only exists while a switch is on (a sweep warns when it tunes one that is off)
TERM_SWITCHES = {"loss.weights.mae": "loss.enhancements.robust", "loss.weights.huber": "loss.enhancements.robust",
                 "loss.weights.perceptual_main": "loss.enhancements.perceptual",
                 "loss.weights.perceptual_hier": "loss.enhancements.perceptual",
                 "loss.weights.consistency": "loss.enhancements.consistency",
                 "loss.weights.spectral": "loss.enhancements.spectral"}
COMPONENTS = ("latent", "perceptual", "consistency", "spectral")  # what adaptive weighting balances
# The seed's TensorBoard tags ("Enhanced TensorBoard logging"). It numbers the adaptive weights by
# position (component_0 ...), which shifts with what is enabled; they are named here instead, so a
# component's curve keeps its name across configs.
TAGS = {"train/loss": "Enhanced_Loss/total", "train/mse_main": "Enhanced_Loss/mse_main",
        "train/mse_hier": "Enhanced_Loss/mse_hier", "train/perceptual_main": "Enhanced_Loss/perceptual_main",
        "train/perceptual_hier": "Enhanced_Loss/perceptual_hier", "train/consistency": "Enhanced_Loss/consistency",
        "train/spectral": "Enhanced_Loss/spectral",
        **{f"health/weight_{name}": f"Adaptive_Weights/{name}" for name in COMPONENTS}}


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


def load_arrays(cfg):
    """(train images, y1, y2, val images, y1, y2) as numpy arrays."""
    from losstune.data.latent_conditioner import load_directory, synthetic_set

    d, m = cfg.data, cfg.model
    dims = (m.latent_dim_end, m.latent_dim * m.size2)
    if not d.path:
        return (*synthetic_set(d.num_train, d.image_size, d.seed, *dims),
                *synthetic_set(d.num_val, d.image_size, d.seed + 1, *dims))
    train = load_directory(d.path, d.image_size, *dims)
    if d.val_path:
        return (*train, *load_directory(d.val_path, d.image_size, *dims))
    return hold_out(train, d.val_fraction, d.path, "images")


def check_data(cfg) -> int:
    return len(load_arrays(cfg)[0])


def enabled_components(cfg) -> list[str]:
    e = cfg.loss.enhancements
    on = {"latent": True, "perceptual": e.perceptual, "consistency": e.consistency, "spectral": e.spectral}
    return [name for name in COMPONENTS if on[name]]


def build(cfg) -> Parts:
    from losstune.models.latent_conditioner import LatentConditioner, LatentConditionerTraining

    arrays = [torch.from_numpy(a) for a in load_arrays(cfg)]
    m = cfg.model
    net = LatentConditioner(image_size=cfg.data.image_size, filters=m.filters, blocks_per_stage=m.blocks_per_stage,
                            latent_dim_end=m.latent_dim_end, latent_dim=m.latent_dim, size2=m.size2,
                            encoder_dim=m.encoder_dim, use_attention=m.use_attention, se_reduction=m.se_reduction,
                            drop_rate=m.drop_rate)
    model = LatentConditionerTraining(net, m.latent_dim_end, m.latent_dim * m.size2, cfg.loss.perceptual_hidden,
                                      cfg.loss.adaptive, len(enabled_components(cfg)), cfg.loss.adaptive_bound)
    return Parts(model, TensorDataset(*arrays[:3]), TensorDataset(*arrays[3:]), {})


def optimizer_groups(model, cfg) -> list[OptimizerGroup]:
    """AdamW over the network; seed enhancement 5: the adaptive weights have their own Adam
    (lr 1e-3), unscheduled and unclipped."""
    weights = list(model.weighter.parameters()) if model.weighter is not None else []
    taken = {id(p) for p in weights}
    network = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]
    groups = [OptimizerGroup("model", adamw(network, cfg.optim))]
    if weights:
        groups.append(OptimizerGroup("loss_weights", torch.optim.Adam(weights, lr=cfg.loss.adaptive_lr),
                                     scheduled=False, clipped=False))
    return groups


def term_weights(cfg) -> dict:
    """Per-term weights: head weight (main 10 : hier 1) x error kind (mse / mae / huber), and the
    enhancements' own weights."""
    w = cfg.loss.weights
    weights = {f"{kind}_{head}": getattr(w, head) * getattr(w, kind)
               for head in ("main", "hier") for kind in ("mse", "mae", "huber")}
    weights.update(perceptual_main=w.perceptual_main, perceptual_hier=w.perceptual_hier,
                   consistency=w.consistency, spectral=w.spectral)
    return weights


def augment(x, y1, y2, a: AugmentConfig):
    """Seed "Augmentation Strategy": each block drawn once per batch with its probability.
    Returns (x, y1, y2, whether the outline-preserving block ran)."""
    from losstune.data.latent_conditioner import mixup, outline_preserving

    outlined = bool(torch.rand(()) < a.outline_p)
    if outlined:
        x = outline_preserving(x, a.flip_p, a.max_shift_px, a.max_degrees, (a.scale_min, a.scale_max))
    if x.shape[0] > 1 and bool(torch.rand(()) < a.mixup_p):
        x, y1, y2 = mixup(x, y1, y2, a.mixup_alpha)
    if bool(torch.rand(()) < a.noise_p):
        x = x + torch.randn_like(x) * a.noise_std
    return x, y1, y2, outlined


def loss_terms(model, batch, cfg):
    from losstune.losses.latent import (FeatureCapture, consistency_term, frobenius_term, perceptual_term, robust_terms,
                               smooth_targets)

    inner = getattr(model, "module", model)  # the LatentConditionerTraining under DDP
    e, ls = cfg.loss.enhancements, cfg.loss.label_smooth
    x, y1, y2 = batch
    original = x
    x, y1, y2, outlined = augment(x, y1, y2, cfg.augment)
    with FeatureCapture(inner.net.blocks) as capture:
        pred1, pred2 = model(x)
    terms = {}
    for head, pred, target in (("main", pred1, y1), ("hier", pred2, y2)):
        for kind, value in robust_terms(pred, smooth_targets(target, ls), cfg.loss.huber_beta, e.robust).items():
            terms[f"{kind}_{head}"] = value
    if e.perceptual:
        terms["perceptual_main"] = perceptual_term(inner.perceptual_main, pred1, y1)
        terms["perceptual_hier"] = perceptual_term(inner.perceptual_hier, pred2, y2)
    if e.consistency:
        # Every batch, as the seed's training loop (where no augmentation fired it measures
        # only the network's own noise). The reference runs on the network, not its DDP wrapper:
        # a DDP forward is a collective, and the other workers' batches may not take this branch.
        with torch.no_grad():
            reference = inner(original)
        terms["consistency"] = consistency_term((pred1, pred2), reference)
    if e.spectral:
        terms["spectral"] = frobenius_term(capture.features)
    return terms, {"outline_augmented": torch.tensor(float(outlined))}


def combine(model, weighted: dict, cfg):
    """The total loss from the weighted terms: the seed's adaptive hierarchical weight, then the
    adaptive weighting of the enabled components. Returns (total, health stats)."""
    from losstune.losses.latent import hier_scale

    health = {}
    main = sum(v for k, v in weighted.items() if k.endswith("_main") and not k.startswith("perceptual"))
    hier = sum(v for k, v in weighted.items() if k.endswith("_hier") and not k.startswith("perceptual"))
    if cfg.loss.enhancements.robust and cfg.loss.adaptive_hier:
        scale = hier_scale(main / cfg.loss.weights.main, hier / cfg.loss.weights.hier)
        hier = hier * scale
        health["hier_scale"] = scale
    parts = {"latent": main + hier,
             "perceptual": weighted.get("perceptual_main", 0.0) + weighted.get("perceptual_hier", 0.0),
             "consistency": weighted.get("consistency"), "spectral": weighted.get("spectral")}
    names = enabled_components(cfg)
    components = torch.stack([torch.as_tensor(parts[name]) for name in names])
    inner = getattr(model, "module", model)
    if inner.weighter is None:
        total, weights = components.sum(), torch.ones_like(components)
    else:
        total, weights = inner.weighter(components)
        health.update({f"weight_{name}": value for name, value in zip(names, weights)})
        health["min_adaptive_weight"] = weights.min()
    if len(names) > 1:  # one component alone is all of the loss by definition
        share = (weights * components.detach()).abs()
        health["max_component_share"] = share.max() / share.sum().clamp_min(1e-12)
    return total, health


@torch.no_grad()
def val_metrics(model, batch, cfg, extras):
    """Per sample: the objective latent_mse (main + hier, unweighted, so trials that tune the
    weights compare), its parts, the cosine of the main latent, and the seed's own validation
    loss, weighted main : hier = 10 : 1 at the documented default (not comparable across trials
    that tune those two weights)."""
    x, y1, y2 = batch
    pred1, pred2 = model(x)
    mse_main = (pred1.float() - y1).pow(2).mean(1)
    mse_hier = (pred2.float() - y2).pow(2).mean(1)
    w = cfg.loss.weights
    return {"latent_mse": mse_main + mse_hier, "mse_main": mse_main, "mse_hier": mse_hier,
            "cosine_main": torch.nn.functional.cosine_similarity(pred1.float(), y1, dim=1),
            "weighted_loss": w.main * mse_main + w.hier * mse_hier}


def stop_reason(metrics, cfg) -> str:
    """The seed's warning signs, after the grace epochs; overfitting at once (it needs a trained
    model to happen)."""
    h = cfg.health
    train_mse = metrics.get("train/mse_main", 0.0) + metrics.get("train/mse_hier", 0.0)
    if train_mse > 0 and metrics["val/latent_mse"] / train_mse > h.max_val_train_ratio:
        return "overfitting"
    if metrics["epoch"] <= h.grace_epochs:
        return ""
    if metrics.get("health/max_component_share", 0.0) > h.max_component_share:
        return "loss_imbalance"
    if metrics.get("health/min_adaptive_weight", 1.0) < h.min_adaptive_weight:
        return "weight_collapse"
    if metrics["health/grad_norm_out_of_range"] > h.max_bad_grad_share:
        return "grad_norm_out_of_range"
    return ""
