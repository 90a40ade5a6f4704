"""The config sections every family's Config has and the shared loop reads (optim, schedule,
train), with the checks that need more than one field or the machine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from losstune.trainables.config import ConfigError, above, at_least, within


def unet_misfit(sides, widths, widths_field: str) -> str:
    """Why a UNet of len(widths) levels cannot take images of these sides ("" where it can): it
    halves height and width once per level after the first, and its skip connections need every
    halving exact."""
    levels, step = len(widths), 2 ** (len(widths) - 1)
    if all(side % step == 0 for side in sides):
        return ""
    return (f"do not fit {widths_field} {list(widths)}: its {levels} levels halve them {levels - 1} times, so "
            f"every side must be a multiple of {step}")


def check_unet_sizes(model) -> None:
    """The sizes of a MONAI DiffusionModelUNet section (widths, attention, res_blocks,
    norm_groups, head_channels) fit together."""
    if len(model.widths) != len(model.attention) or not model.widths:
        raise ConfigError("attention", f"needs one flag per width ({len(model.widths)}), got {len(model.attention)}")
    if any(w % model.norm_groups for w in model.widths):
        raise ConfigError("widths", f"must all be multiples of norm_groups={model.norm_groups}, got {list(model.widths)}")
    at_least("res_blocks", model.res_blocks, 1)
    at_least("head_channels", model.head_channels, 1)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW, the optimiser of the shared loop, and the optimiser-side tricks it offers every
    family (trainables/engine/optim_tricks.py), all off by default."""

    lr: float = 1e-3
    weight_decay: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    sam_rho: float = 0.0  # SAM's neighbourhood radius; 0 = plain AdamW, > 0 = two passes per step
    sam_adaptive: bool = False  # ASAM: the radius in units of each weight's scale
    grad_noise_sigma: float = 0.0  # gradient noise std at step 0 (after clipping); 0 = off
    grad_noise_decay: float = 0.55  # the std decays as sigma / (1 + step)^decay
    ema_decay: float = 0.0  # EMA of the weights for validation and checkpoints; 0 = off

    def __post_init__(self):
        above("lr", self.lr, 0.0)
        at_least("weight_decay", self.weight_decay, 0.0)
        within("beta1", self.beta1, 0.0, 0.999999)
        within("beta2", self.beta2, 0.0, 0.999999)
        at_least("grad_clip", self.grad_clip, 0.0)
        within("sam_rho", self.sam_rho, 0.0, 10.0)
        at_least("grad_noise_sigma", self.grad_noise_sigma, 0.0)
        within("grad_noise_decay", self.grad_noise_decay, 0.0, 10.0)
        within("ema_decay", self.ema_decay, 0.0, 0.999999)


@dataclass(frozen=True)
class ScheduleConfig:
    """Linear warmup then cosine decay, a constant rate, or a constant rate that ReduceLROnPlateau
    cuts when the family's objective stops improving; stepped per optimiser step (plateau: per
    validation).

    Warmup is a fraction of all steps so that a short run keeps the shape of a long one, or, with
    `warmup_epochs` > 0, that many epochs.
    """

    kind: Literal["cosine", "constant", "plateau"] = "cosine"
    warmup_frac: float = 0.05
    warmup_epochs: float = 0.0  # > 0: warmup in epochs instead of warmup_frac
    warmup_start_factor: float = 0.01
    eta_min_factor: float = 0.0  # cosine floor as a fraction of optim.lr
    plateau_factor: float = 0.5  # plateau: the LR is multiplied by this ... (no seed gives either)
    plateau_patience: int = 10  # ... after this many validations without improvement

    def __post_init__(self):
        within("warmup_frac", self.warmup_frac, 0.0, 0.9)
        at_least("warmup_epochs", self.warmup_epochs, 0.0)
        within("warmup_start_factor", self.warmup_start_factor, 1e-6, 1.0)
        within("eta_min_factor", self.eta_min_factor, 0.0, 1.0)
        within("plateau_factor", self.plateau_factor, 1e-6, 0.999999)
        at_least("plateau_patience", self.plateau_patience, 0)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    seed: int = 0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    checkpoint_every: int = 1  # epochs between checkpoints; 0 = only at the end
    # epochs between validations; the first and last epoch always validate, and an epoch that
    # does not reports the latest validation's values (val_epoch says which)
    val_every: int = 1
    num_data_workers: int = 0  # DataLoader worker processes per training worker

    def __post_init__(self):
        at_least("epochs", self.epochs, 1)
        at_least("batch_size", self.batch_size, 1)
        at_least("checkpoint_every", self.checkpoint_every, 0)
        at_least("val_every", self.val_every, 1)
        at_least("num_data_workers", self.num_data_workers, 0)


def check_precision(train: TrainConfig, has_gpu: bool) -> None:
    """fp16 needs a GPU's grad scaler; on CPU it is a config error, not a slow surprise."""
    if train.mixed_precision == "fp16" and not has_gpu:
        raise ConfigError("train.mixed_precision", "fp16 needs a GPU (--gpus-per-worker > 0); use bf16 or no")
