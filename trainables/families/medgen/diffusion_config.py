"""The medgen_diffusion family's settings: its config sections with the seed's documented defaults,
its presets and its smoke-test sizes (the family's functions: trainables/families/medgen/diffusion.py).
Sections of their own: the denoiser (medgen_denoiser_config), the regularisers (medgen_augment_config),
validation and generation (medgen_generation_config)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from losstune.trainables.config import ConfigError, at_least, within
from losstune.trainables.engine.loop_config import OptimConfig, ScheduleConfig, TrainConfig
from losstune.trainables.families.medgen.augment_config import RegularisationConfig, ScoreAugConfig, SDAConfig
from losstune.trainables.families.medgen.compression_config import image_sides
from losstune.trainables.families.medgen.denoiser_config import ModelConfig
from losstune.trainables.families.medgen.generation_config import EvalConfig, GenerationConfig


@dataclass(frozen=True)
class DataConfig:
    path: str = ""  # a folder of subject folders with <modality>.nii(.gz); "" = synthetic phantoms
    val_path: str = ""  # a second such folder; "" = the last `val_fraction` of path's subjects
    val_fraction: float = 0.2  # held out by subject, never by slice, so no subject is in both
    # seed "Diffusion Modes"; seg_conditioned* generate masks conditioned on tumour-size bins
    # (seg_conditioned_3d: seg_conditioned for volumes, the seed's name for it)
    # bravo_seg_cond: bravo's latent conditioned on the mask's latent (representation.seg_checkpoint); latent space only
    # multi: every modality, one at a time, with its mask and a mode embedding
    mode: Literal["seg", "bravo", "dual", "multi", "seg_conditioned", "seg_conditioned_3d", "seg_conditioned_input",
                  "bravo_seg_cond"] = "bravo"
    image_size: int = 128  # 2D; seed "IDUN Diffusion Experiments": 128
    volume: tuple[int, ...] = (256, 256, 160)  # 3D (H, W, D); seed configs/volume/default.yaml
    # 2D: leave out slices without image signal (outside the head). Not in seg mode, whose only
    # image is the mask: there an "empty" slice is a tumour-free one, and the mask generator, whose
    # masks condition bravo generation, must learn those too (most slices of a real brain).
    skip_empty_slices: bool = True
    augment: bool = True  # seed "Config Options": training.augment true, augment_type diffusion
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
        at_least("subjects", self.subjects, 2)  # one to train on, one to validate


@dataclass(frozen=True)
class StrategyConfig:
    name: Literal["ddpm", "rflow"] = "rflow"  # seed: RFlow is the strategy of its examples
    num_train_timesteps: int = 1000  # seed "RFlow Defaults"
    timestep_transform: bool = True  # seed "RFlow Defaults": use_timestep_transform true
    transform_base_size: int = 128  # not in the seed: the side at which the transform is neutral

    def __post_init__(self):
        at_least("num_train_timesteps", self.num_train_timesteps, 2)
        at_least("transform_base_size", self.transform_base_size, 1)


@dataclass(frozen=True)
class LossConfig:
    perceptual_weight: float = 0.0  # seed "Loss Functions": 0.0 (0.001 to enable)
    perceptual_weights_path: str = ""  # local ResNet-50 weights for MONAI's perceptual loss
    min_snr_gamma: float = 0.0  # 0 = off (seed exp1 baseline); 5 is the Min-SNR paper's value

    def __post_init__(self):
        at_least("perceptual_weight", self.perceptual_weight, 0.0)
        at_least("min_snr_gamma", self.min_snr_gamma, 0.0)


@dataclass(frozen=True)
class RepresentationConfig:
    """seed "Spaces": PixelSpace (the default); SpaceToDepthSpace and WaveletSpace, exact
    rearrangements of the pixels at half the sides (trainables/families/medgen/representations.py); or
    LatentSpace, the frozen autoencoder of a trained medgen_compression checkpoint
    (trainables/families/medgen/latent_representation.py)."""

    name: Literal["pixel", "space_to_depth", "wavelet", "latent"] = "pixel"  # seed "Spaces": PixelSpace is the default
    factor: int = 2  # space_to_depth: seed "Spaces" scale_factor 2 (the wavelet's is 2 by construction)
    checkpoint: str = ""  # latent: a medgen_compression checkpoint folder
    seg_checkpoint: str = ""  # latent, data.mode=bravo_seg_cond: a seg autoencoder's checkpoint (seed: a VQ-VAE)
    scale_factor: float = 0.0  # latent: the latents' scale; 0 = the DC-AE's own, else measured (1 / std)
    # latent: a checkpoint whose run stopped on a health check is refused unless this is set
    accept_unhealthy: bool = False  # not in the seed
    # latent, a DC-AE 1.5 checkpoint (model.dcae.structured_latent): seed "augmented diffusion
    # training", each sample's latent noised and judged on its first c' channels only, c' drawn as
    # the autoencoder was trained; the seed says both "MUST" be on together. 0: the checkpoint's.
    augmented_diffusion: bool = False  # seed training.augmented_diffusion.enabled false
    min_channels: int = 0  # seed "Match AE settings"
    channel_step: int = 0

    def __post_init__(self):
        at_least("scale_factor", self.scale_factor, 0.0)
        at_least("factor", self.factor, 2)
        at_least("min_channels", self.min_channels, 0)
        at_least("channel_step", self.channel_step, 0)
        if self.augmented_diffusion and self.name != "latent":
            # the seed ignores it outside latent space; refused here, so a sweep never varies a no-op
            raise ConfigError("augmented_diffusion", f"masks latent channels; representation.name={self.name} has none "
                                                     "(use representation.name=latent with a DC-AE 1.5 checkpoint)")
        if self.name == "latent" and not self.checkpoint:
            raise ConfigError("checkpoint", "is required for representation.name=latent (a medgen_compression checkpoint folder)")
        for name in ("checkpoint", "seg_checkpoint"):
            if getattr(self, name) and not os.path.isdir(getattr(self, name)):
                raise ConfigError(name, f"{getattr(self, name)}: no such folder")

    @property
    def shrink(self) -> int:
        """How many times the space shrinks each side before the network sees it (latent: checked
        against its autoencoder in check_data)."""
        return {"space_to_depth": self.factor, "wavelet": 2}.get(self.name, 1)


@dataclass(frozen=True)
class HealthConfig:
    """`health/timestep_bin_ratio` (the worst timestep bin's validation loss over the median bin's)
    is reported, not a stop: the seed calls a high loss near t = 0 normal for RFlow ("Expected
    RFlow pattern"), DDPM's noise loss is high at small t by nature, and no trained run has shown
    a ratio that only broken runs cross. A user who has measured their healthy range can set
    `max_bin_ratio` to stop beyond it."""

    grace_epochs: int = 1
    max_bin_ratio: float = 0.0  # 0 = report only

    def __post_init__(self):
        at_least("grace_epochs", self.grace_epochs, 0)
        if self.max_bin_ratio and self.max_bin_ratio <= 1.0:
            raise ConfigError("max_bin_ratio", f"must be 0 (off) or > 1, got {self.max_bin_ratio}")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    representation: RepresentationConfig = field(default_factory=RepresentationConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    regularisation: RegularisationConfig = field(default_factory=RegularisationConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    score_aug: ScoreAugConfig = field(default_factory=ScoreAugConfig)
    sda: SDAConfig = field(default_factory=SDAConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    # seed "Learning Rates": 1e-4; clipping is in the seed (gradient noise comes after it), its norm is not
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, weight_decay=0.0, grad_clip=1.0))
    # seed "Learning Rates": warmup 5 epochs + cosine, eta_min 1e-6 (= 0.01 x lr); warmup from 0.1 x lr
    # (seed "Constant LR Scheduler": start_factor=0.1)
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(
        kind="cosine", warmup_epochs=5.0, warmup_start_factor=0.1, eta_min_factor=0.01))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=100, batch_size=16))  # not in the seed

    def __post_init__(self):
        loss = self.loss
        if loss.perceptual_weight > 0 and self.representation.name != "pixel":
            raise ConfigError("loss.perceptual_weight", "is pixel space only; set it to 0 with "
                                                        f"representation.name={self.representation.name}")
        if self.data.mode == "bravo_seg_cond" and (self.representation.name != "latent" or not self.representation.seg_checkpoint):
            raise ConfigError("data.mode", "bravo_seg_cond is latent diffusion conditioned on the mask's latent (seed): "
                                           "set representation.name=latent, representation.checkpoint and representation.seg_checkpoint")
        if self.representation.seg_checkpoint and self.data.mode != "bravo_seg_cond":
            raise ConfigError("representation.seg_checkpoint", f"encodes the masks of data.mode=bravo_seg_cond; data.mode "
                                                      f"{self.data.mode} conditions on the mask itself")
        if self.data.mode == "seg_conditioned_3d" and self.model.spatial_dims != 3:
            raise ConfigError("data.mode", "seg_conditioned_3d is for volumes: set model.spatial_dims=3 (or use "
                                           "seg_conditioned for slices)")
        # the seg* modes generate masks, which have no perceptual term (data.medgen.binary_mode; not
        # imported here: checking a config needs no torch)
        if loss.perceptual_weight > 0 and not self.data.mode.startswith("seg") and not loss.perceptual_weights_path:
            raise ConfigError("loss.perceptual_weights_path",
                              "is required when loss.perceptual_weight > 0: pretrained perceptual weights cannot "
                              "be downloaded here; give a local ResNet-50 state dict")
        if loss.perceptual_weights_path and not os.path.isfile(loss.perceptual_weights_path):
            raise ConfigError("loss.perceptual_weights_path", f"{loss.perceptual_weights_path}: no such file")
        if self.representation.name != "latent":  # the UNet denoises the images themselves (latents: check_data)
            self.check_images_fit_the_network()
        self.check_augmentation()

    def check_augmentation(self) -> None:
        """ScoreAug and SDA are alternatives (seed: "Do NOT use SDA and ScoreAug together"); a
        rotation needs a square H-W plane."""
        if self.score_aug.enabled and self.sda.enabled:
            raise ConfigError("sda.enabled", "and score_aug.enabled serve one purpose two ways: use one")
        moved = "score_aug.enabled" if self.score_aug.enabled else "sda.enabled" if self.sda.enabled else ""
        if moved and self.representation.name in ("space_to_depth", "wavelet"):
            # a rotation or flip of the rearranged cells is not the rotated image's rearrangement
            raise ConfigError(moved, f"rotates and flips the network's input, which in representation.name={self.representation.name} "
                                     "is not an image: use representation.name=pixel")
        rotates = (self.score_aug.enabled and self.score_aug.rotation) or (self.sda.enabled and self.sda.rotation)
        _, described, sides = image_sides(self.data, self.model.spatial_dims)
        if rotates and sides[0] != sides[1]:
            raise ConfigError("score_aug.rotation" if self.score_aug.enabled else "sda.rotation",
                              f"turns the H-W plane by 90 degrees, which {described} images of {list(sides)} "
                              "do not fit (H != W); turn rotation off")

    def check_images_fit_the_network(self) -> None:
        """In space_to_depth and wavelet space the UNet sees every side shrunk by the space's factor."""
        name, described, sides = image_sides(self.data, self.model.spatial_dims)
        shrink = self.representation.shrink
        if any(side % shrink for side in sides):
            raise ConfigError(name, f"{described} images do not fit representation.name={self.representation.name}, which shrinks "
                                    f"every side {shrink}x: each must be a multiple of {shrink}")
        seen = tuple(side // shrink for side in sides)
        if why := self.model.misfit(seen):
            where = f" (in {self.representation.name} space, {'x'.join(map(str, seen))})" if shrink > 1 else ""
            raise ConfigError(name, f"{described} images{where} {why}")

    def width_matching_unet(self, kind: str) -> int:
        """The width at which transformer `kind` has about as many parameters as this config's UNet:
        the `architecture` space compares architectures at equal size (denoisers.matched_width)."""
        # here, not at the top: loads torch and monai only where this runs (a config is checked without them)
        from losstune.trainables.families.medgen.denoisers import matched_width

        return matched_width(self, kind)


PRESETS = {
    "small": {  # a network a CPU can train: widths / 4
        "model": {"widths": [32, 64, 64], "attention": [False, False, True], "norm_groups": 16, "head_channels": 16}},
    "regularised": {  # every clean regulariser at the seed's parameters (IDUN exp20-25)
        "regularisation": {"curriculum": True, "timestep_jitter": True, "noise_augmentation": True,
                           "feature_perturbation": True, "self_conditioning": True},
        "optim": {"grad_noise_sigma": 0.01, "grad_noise_decay": 0.55}},
    "sam": {"optim": {"sam_rho": 0.05}},  # seed "SAM Optimizer" (IDUN exp11_1)
    "score_aug": {"score_aug": {"enabled": True}},  # seed: rotation and flip, omega conditioning
    "score_aug_v2": {"score_aug": {"enabled": True, "v2_mode": True, "translation": True}},  # seed "Usage Examples"
    "sda": {"sda": {"enabled": True}},  # seed: rotation, flip, noise_shift 0.1
    # seed configs/mode/*.yaml: masks conditioned on tumour-size bins, embedded (FiLM) or as input maps
    "seg_conditioned": {"data": {"mode": "seg_conditioned"}},
    "seg_conditioned_input": {"data": {"mode": "seg_conditioned_input"}},
    "seg_conditioned_3d": {"data": {"mode": "seg_conditioned_3d"}, "model": {"spatial_dims": 3}},
    # seed configs/model/*.yaml: the transformer denoisers at their documented variant and patch
    "dit": {"model": {"kind": "dit"}},
    "dit_3d": {"model": {"kind": "dit", "spatial_dims": 3}},
    "hdit_3d": {"model": {"kind": "hdit", "spatial_dims": 3}},
    "uvit_3d": {"model": {"kind": "uvit", "spatial_dims": 3}},
    # seed configs/space_to_depth, configs/wavelet: the pixel-derived spaces
    "space_to_depth": {"representation": {"name": "space_to_depth"}},
    "wavelet": {"representation": {"name": "wavelet"}, "model": {"spatial_dims": 3}},
}

SMOKE = {"data": {"subjects": 4, "phantom_shape": [32, 32, 24], "image_size": 32, "volume": [32, 32, 32]},
         "model": {"widths": [16, 32, 32], "attention": [False, False, True], "norm_groups": 8, "head_channels": 8},
         "schedule": {"warmup_epochs": 1.0}, "train": {"epochs": 2, "batch_size": 8},
         "generation": {"samples": 8, "kid_subsets": 10, "kid_subset_size": 4, "num_steps": 2}}
