"""The medgen_compression family's settings (seed 001 "Trainers", "VAE Modes", "Loss Functions / VAE
Training", "Learning Rates / VAE", "VAE Augmentation"): its config sections with the seed's
documented defaults, its presets (the seed's named configs) and its smoke-test sizes; the
autoencoders' own sections are medgen_autoencoder_config's. The family's functions:
trainables/families/medgen/compression.py."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from losstune.trainables.config import ConfigError, above, at_least, within
from losstune.trainables.engine.loop_config import OptimConfig, ScheduleConfig, TrainConfig
from losstune.trainables.families.medgen.autoencoder_config import ModelConfig
from losstune.trainables.families.medgen.shapes import image_sides, shrink_misfit


@dataclass(frozen=True)
class DataConfig:
    path: str = ""  # a folder of subject folders with <modality>.nii(.gz); "" = synthetic phantoms
    val_path: str = ""  # a second such folder; "" = the last `val_fraction` of path's subjects
    val_fraction: float = 0.2  # held out by subject, never by slice
    # seed "VAE Modes": bravo (1 channel), dual (t1_pre + t1_gd, no seg), seg (the mask as an image),
    # seg_compression (the mask, DC-AE only, BCE + Dice + Boundary), multi_modality (bravo, flair, t1_pre
    # and t1_gd pooled: one 1-channel autoencoder for all; the mode of the seed's VAE experiments exp3-exp10)
    mode: Literal["bravo", "dual", "seg", "seg_compression", "multi_modality"] = "bravo"
    image_size: int = 256  # 2D; seed "IDUN VAE Experiments": 256
    volume: tuple[int, ...] = (256, 256, 160)  # 3D (H, W, D); seed "3D VAE": 256x256x160
    skip_empty_slices: bool = True  # 2D, image modes: slices without signal (outside the head) are left out
    augment: bool = True  # seed "VAE Augmentation (Aggressive)"
    mixup_prob: float = 0.0  # seed "Batch-level Augmentations": 0.2 when enabled, off by default
    cutmix_prob: float = 0.0  # ... the same
    subjects: int = 10  # synthetic only
    phantom_shape: tuple[int, ...] = (128, 128, 64)  # synthetic only (H, W, D)
    seed: int = 0  # synthetic only

    def __post_init__(self):
        within("val_fraction", self.val_fraction, 0.01, 0.9)
        at_least("image_size", self.image_size, 8)
        for name in ("volume", "phantom_shape"):
            shape = getattr(self, name)
            if len(shape) != 3 or min(shape) < 8:
                raise ConfigError(name, f"must be 3 sizes (H, W, D) of at least 8, got {list(shape)}")
        within("mixup_prob", self.mixup_prob, 0.0, 1.0)
        within("cutmix_prob", self.cutmix_prob, 0.0, 1.0)
        at_least("subjects", self.subjects, 2)


@dataclass(frozen=True)
class GANConfig:
    """MONAI PatchDiscriminator and PatchAdversarialLoss (least squares, as MONAI's recipes)."""

    enabled: bool = True  # seed `disable_gan: false`; off: no discriminator is created at all
    start_epoch: int = 5  # adversarial terms from this epoch (0-based); the seed names none, MONAI's 3D recipe waits 5
    disc_lr: float = 5e-4  # seed "Learning Rates / VAE": discriminator 5e-4
    disc_layers: int = 3  # MONAI recipes: num_layers_d 3
    disc_channels: int = 64  # MONAI recipes: 64

    def __post_init__(self):
        at_least("start_epoch", self.start_epoch, 0)
        above("disc_lr", self.disc_lr, 0.0)
        at_least("disc_layers", self.disc_layers, 1)
        at_least("disc_channels", self.disc_channels, 1)


@dataclass(frozen=True)
class LossWeights:
    """seed "Loss Functions / VAE Training": L1 + 0.001 perceptual + 1e-6 KL + 0.01 adversarial;
    VQ-VAE: 0.002 perceptual, commitment 0.25, 0.005 adversarial (preset vqvae); DC-AE: L1 +
    perceptual, adversarial 0 in phase 1 (preset dcae). Seg compression: BCE + Dice + Boundary, the
    seed names no weights: 1 each."""

    l1: float = 1.0  # seed "VAE Training": L1_loss, weight 1
    perceptual: float = 0.001  # seed "VAE Training": 0.001 x perceptual (VQ-VAE 0.002)
    kl: float = 1e-6  # seed "VAE Training": 1e-6 x KL
    vq: float = 0.25  # the commitment cost: MONAI's quantisation loss at cost 1, times this
    adversarial: float = 0.01  # seed "VAE Training": 0.01 x adversarial (VQ-VAE 0.005)
    bce: float = 1.0  # seg_compression (seed "DC-AE seg mode"); the seed names no weight
    dice: float = 1.0  # ... the same
    boundary: float = 1.0  # ... the same

    def __post_init__(self):
        for name, value in vars(self).items():
            at_least(name, value, 0.0)


@dataclass(frozen=True)
class LossConfig:
    weights: LossWeights = field(default_factory=LossWeights)
    perceptual_weights_path: str = ""  # a local ResNet-50 state dict for MONAI's perceptual loss

    def __post_init__(self):
        if self.perceptual_weights_path and not os.path.isfile(self.perceptual_weights_path):
            raise ConfigError("perceptual_weights_path", f"{self.perceptual_weights_path}: no such file")


@dataclass(frozen=True)
class EvalConfig:
    msssim: bool = True  # seed "Logging Configuration": msssim true
    # seed logging.lpips (true): LPIPS needs an ImageNet AlexNet, a local torchvision-layout state dict
    # (nothing is downloaded); "" = not computed. 2D images only, as in the seed.
    lpips_weights: str = ""


@dataclass(frozen=True)
class HealthConfig:
    """Stops for runs that are clearly broken, from `grace_epochs` on (of training, or of the GAN)."""

    grace_epochs: int = 2  # not in the seed: epochs before a stop may fire
    kl_floor: float = 0.1  # KL (nats per sample) below this ...
    poor_l1: float = 0.1  # ... while the validation L1 is above this: the posterior collapsed
    min_codebook_usage: float = 0.02  # VQ-VAE: share of codes used in validation (0.02 of 512 = 10)
    # The discriminator dominates: its loss below `disc_floor` while the generator's least-squares
    # adversarial loss is above `adv_ceiling` (it is (D(fake) - 1)^2: near 1 where D says "fake")
    disc_floor: float = 0.02  # not in the seed
    adv_ceiling: float = 0.8  # not in the seed
    # Reported every epoch as health/discriminator_dominated (the share of the epoch's steps where it
    # held), a stop only when asked: on real brain MRI the default stopped so at epoch 3 while its
    # val/l1 was still falling (0.326 -> 0.206 -> 0.184); these thresholds are guesses, uncalibrated
    stop_on_discriminator_domination: bool = False  # not in the seed
    domination_share: float = 0.9  # not in the seed: with the stop on, dominated at this share of an epoch's steps

    def __post_init__(self):
        at_least("grace_epochs", self.grace_epochs, 0)
        for name in ("kl_floor", "poor_l1", "min_codebook_usage", "disc_floor", "adv_ceiling"):
            at_least(name, getattr(self, name), 0.0)
        within("domination_share", self.domination_share, 0.0, 1.0)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    gan: GANConfig = field(default_factory=GANConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    # seed "Learning Rates / VAE": generator 1e-4; its weight decay and clipping norm are not in the seed
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, weight_decay=0.0, grad_clip=1.0))
    # seed "Learning Rates / VAE": "Same scheduler pattern" as diffusion: warmup 5 epochs + cosine to 0.01 x lr
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(
        kind="cosine", warmup_epochs=5.0, warmup_start_factor=0.1, eta_min_factor=0.01))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=100, batch_size=16))  # not in the seed

    def __post_init__(self):
        if self.model.pure_bf16_weights and self.train.mixed_precision != "bf16":
            raise ConfigError("model.pure_bf16_weights", "needs train.mixed_precision=bf16 (seed \"Precision "
                                                         "Configuration\": bf16 weights compute under autocast)")
        if self.data.mode == "seg_compression" and self.model.kind != "dcae":
            raise ConfigError("data.mode", "seg_compression is DC-AE's (seed \"VAE Modes\"); set model.kind=dcae")
        self.check_images_fit_the_autoencoder()

    def check_images_fit_the_autoencoder(self) -> None:
        """The decoder gives back an image of the input's size only where every 2x step of the
        encoder was exact (else a trial failed on its first batch: sizes or pixel_unshuffle)."""
        name, described, sides = image_sides(self.data, self.model.spatial_dims)
        if why := shrink_misfit(sides, self.model):
            raise ConfigError(name, f"{described} images {why}")


PRESETS = {
    "vae": {},  # the documented default
    "vae_3d": {"model": {"spatial_dims": 3, "gradient_checkpointing": True}},
    "vqvae": {"model": {"kind": "vqvae"}, "loss": {"weights": {"perceptual": 0.002, "adversarial": 0.005}}},
    "vqvae_3d": {"model": {"kind": "vqvae", "spatial_dims": 3, "gradient_checkpointing": True},
                 "loss": {"weights": {"perceptual": 0.002, "adversarial": 0.005}}},
    # DC-AE phase 1: L1 + perceptual, no GAN; `--set loss.weights.adversarial=0.1 --set gan.enabled=true`
    # is phase 3 (seed "DC-AE Phase 3"), which freezes the encoder
    "dcae": {"model": {"kind": "dcae"}, "gan": {"enabled": False}, "loss": {"weights": {"adversarial": 0.0}}},
    "f32": {"model": {"kind": "dcae", "dcae": {"variant": "f32c32"}}, "gan": {"enabled": False},
            "loss": {"weights": {"adversarial": 0.0}}},
    "f64": {"model": {"kind": "dcae", "dcae": {"variant": "f64c128"}}, "gan": {"enabled": False},
            "loss": {"weights": {"adversarial": 0.0}}},
    "f128": {"model": {"kind": "dcae", "dcae": {"variant": "f128c512"}}, "gan": {"enabled": False},
             "loss": {"weights": {"adversarial": 0.0}}},
    # seed "DC-AE 1.5": f64 recommended, channel masking from 16 channels in steps of 4; the latent
    # diffusion on its checkpoint sets representation.augmented_diffusion=true (the seed: both, or neither)
    "f64_structured": {"model": {"kind": "dcae", "dcae": {"variant": "f64c128", "structured_latent": True}},
                       "gan": {"enabled": False}, "loss": {"weights": {"adversarial": 0.0}}},
    "multi_modality": {"data": {"mode": "multi_modality"}},  # seed "VAE Modes" (IDUN exp3-exp10)
    "seg_compression": {"model": {"kind": "dcae"}, "data": {"mode": "seg_compression"}, "gan": {"enabled": False},
                        "loss": {"weights": {"adversarial": 0.0, "perceptual": 0.0}}},
    # a CPU can train it: 64 px slices, narrow networks, no perceptual term (its ResNet-50 is the
    # slowest part of a step and needs local weights)
    "small": {"data": {"image_size": 64, "volume": [64, 64, 32]},
              "model": {"vae": {"channels": [16, 32, 32], "norm_groups": 8},
                        "vqvae": {"channels": [16, 32, 32], "res_layers": 1},
                        "dcae": {"width_factor": 0.125, "layers_per_block": 1}},
              "gan": {"disc_channels": 16, "disc_layers": 2},
              "loss": {"weights": {"perceptual": 0.0}}, "train": {"batch_size": 8}},
}

# No perceptual term: its ResNet-50 needs local weights, which a smoke test does not have. The GAN
# starts at once, so that two epochs train both networks.
SMOKE = {"data": {"subjects": 4, "phantom_shape": [32, 32, 24], "image_size": 32, "volume": [32, 32, 16]},
         "model": {"vae": {"channels": [8, 16], "norm_groups": 8, "res_blocks": 1},
                   "vqvae": {"channels": [8, 16], "res_layers": 1, "num_embeddings": 64},
                   "dcae": {"width_factor": 0.0625, "layers_per_block": 1}},
         "gan": {"start_epoch": 0, "disc_channels": 8, "disc_layers": 2},
         "loss": {"weights": {"perceptual": 0.0}},
         "schedule": {"warmup_epochs": 1.0}, "train": {"epochs": 2, "batch_size": 8}}
