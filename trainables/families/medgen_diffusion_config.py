"""The medgen_diffusion family's settings: its config sections with the seed's documented defaults,
its presets and its smoke-test sizes (the family's functions: trainables/families/medgen_diffusion.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from losstune.trainables.config import ConfigError, at_least, within
from losstune.trainables.engine.loop_config import OptimConfig, ScheduleConfig, TrainConfig, check_unet_sizes, unet_misfit
from losstune.trainables.families.medgen_augment_config import ScoreAugConfig, SDAConfig
from losstune.trainables.families.medgen_compression_config import image_sides


@dataclass(frozen=True)
class DataConfig:
    path: str = ""  # a folder of subject folders with <modality>.nii(.gz); "" = synthetic phantoms
    val_path: str = ""  # a second such folder; "" = the last `val_fraction` of path's subjects
    val_fraction: float = 0.2  # held out by subject, never by slice, so no subject is in both
    # seed "Diffusion Modes"; seg_conditioned* generate masks conditioned on tumour-size bins
    # (seg_conditioned_3d: seg_conditioned for volumes, the seed's name for it)
    # bravo_seg_cond: bravo's latent conditioned on the mask's latent (space.seg_checkpoint); latent space only
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


# seed "Model Architectures": each transformer's documented variant and patch size (model/dit.yaml
# variant B patch 2, hdit_3d.yaml S patch 4, uvit_3d.yaml S patch 8)
TRANSFORMER_DEFAULTS = {"dit": ("B", 2), "hdit": ("S", 4), "uvit": ("S", 8)}
# ... and (width, depth, heads) per variant. HDiT shares DiT's widths and heads, its depth is
# `level_depths`; UViT's depth is odd (encoder half, one middle block, decoder half). Here, not beside
# the models, so that checking a config needs no torch
VARIANTS = {
    "dit": {"S": (384, 12, 6), "B": (768, 12, 12), "L": (1024, 24, 16), "XL": (1152, 28, 16)},
    "hdit": {"S": (384, 0, 6), "B": (768, 0, 12), "L": (1024, 0, 16), "XL": (1152, 0, 16)},
    "uvit": {"S": (512, 13, 8), "S-Deep": (512, 17, 8), "M": (768, 17, 12), "L": (1024, 21, 16)},
}


@dataclass(frozen=True)
class ModelConfig:
    """seed "Model Architectures": the UNet (the default) with channels [128, 256, 256], attention
    [false, true, true], num_res_blocks 1, the head size MONAI's default (the seed names none); or a
    transformer, DiT, HDiT or UViT (models/medgen_transformers.py), of the seed's variants and patch
    sizes. `width`, `depth`, `heads` (0: the variant's) size a transformer outside the seed's table;
    an `architecture` sweep sets `width` to match the UNet's parameter count."""

    kind: Literal["unet", "dit", "hdit", "uvit"] = "unet"  # seed model.type: unet is the default
    spatial_dims: int = 2
    widths: tuple[int, ...] = (128, 256, 256)
    attention: tuple[bool, ...] = (False, True, True)
    res_blocks: int = 1
    norm_groups: int = 32
    head_channels: int = 8
    # Not in the seed: MONAI's use_flash_attention (torch's scaled_dot_product_attention), the same
    # attention without its full matrix, which at the seed's size (batch 16, 256 / 8 = 32 heads over
    # 64x64 = 4096 positions) is 16 x 32 x 4096^2 floats = 34 GB in one layer: off, a default trial
    # could not train on a 24 GiB machine (benchmarks/memory.py).
    flash_attention: bool = True
    variant: str = ""  # transformers: "" = the seed's per kind (TRANSFORMER_DEFAULTS)
    patch_size: int = 0  # transformers: 0 = the seed's per kind; seed "1, 2, 4, or 8"
    width: int = 0  # transformers: 0 = the variant's
    depth: int = 0  # dit, uvit: 0 = the variant's
    heads: int = 0  # 0 = the variant's
    level_depths: tuple[int, ...] = (2, 4, 6, 4, 2)  # hdit: seed "Blocks per level (must be odd-length)"
    qk_norm: bool = True  # dit, hdit: seed "qk_norm: true"
    uvit_qk_norm: bool = False  # uvit: seed "qk_norm: false  # Paper default"

    def __post_init__(self):
        if self.spatial_dims not in (2, 3):
            raise ConfigError("spatial_dims", f"must be 2 or 3, got {self.spatial_dims}")
        check_unet_sizes(self)
        if self.kind == "unet":
            return
        if self.variant and self.variant not in VARIANTS[self.kind]:
            raise ConfigError("variant", f"{self.variant!r} is not a {self.kind} variant (seed: "
                                         f"{', '.join(VARIANTS[self.kind])})")
        if self.patch_size not in (0, 1, 2, 4, 8):
            raise ConfigError("patch_size", f"must be 1, 2, 4 or 8 (seed), got {self.patch_size}")
        for name in ("width", "depth", "heads"):
            at_least(name, getattr(self, name), 0)
        if self.kind == "uvit" and self.transformer_size()[1] % 2 == 0:
            raise ConfigError("depth", f"must be odd for uvit (encoder half, one middle block, decoder half), "
                                       f"got {self.transformer_size()[1]}")
        if self.kind == "hdit" and (len(self.level_depths) % 2 == 0 or min(self.level_depths) < 1):
            raise ConfigError("level_depths", f"must be an odd number of depths of at least 1 (seed), "
                                              f"got {list(self.level_depths)}")
        width, _, heads = self.transformer_size()
        if width % heads or (width // heads) % 2:
            raise ConfigError("width", f"{width} must split into {heads} heads of an even size")

    def transformer_size(self) -> tuple[int, int, int]:
        """(width, depth, heads): the variant's, each replaced where set."""
        variant = self.variant or TRANSFORMER_DEFAULTS[self.kind][0]
        width, depth, heads = VARIANTS[self.kind][variant]
        return self.width or width, self.depth or depth, self.heads or heads

    @property
    def patch(self) -> int:
        return self.patch_size or TRANSFORMER_DEFAULTS[self.kind][1]

    def misfit(self, sides) -> str:
        """Why this network cannot take inputs of these sides ("" where it can)."""
        if self.kind == "unet":
            return unet_misfit(sides, self.widths, "model.widths")
        step = self.patch * (2 ** (len(self.level_depths) // 2) if self.kind == "hdit" else 1)
        if all(side % step == 0 for side in sides):
            return ""
        merges = f" and its {len(self.level_depths) // 2} token merges" if self.kind == "hdit" else ""
        return f"do not fit model.patch_size {self.patch}{merges} of the {self.kind}: every side must be a multiple of {step}"


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
class RegularisationConfig:
    """seed "Clean Regularization Techniques", each off by default, with the seed's parameters
    (IDUN experiments 21-25)."""

    curriculum: bool = False
    curriculum_warmup_epochs: int = 50
    curriculum_start: tuple[float, ...] = (0.0, 0.3)  # (min t, max t) at epoch 0
    curriculum_end: tuple[float, ...] = (0.0, 1.0)  # ... after the warmup epochs
    timestep_jitter: bool = False
    jitter_std: float = 0.05
    noise_augmentation: bool = False
    noise_augmentation_std: float = 0.1
    feature_perturbation: bool = False
    feature_std: float = 0.1
    feature_layers: tuple[str, ...] = ("mid",)  # of "encoder", "mid", "decoder"
    self_conditioning: bool = False
    self_conditioning_prob: float = 0.5
    self_conditioning_weight: float = 0.1

    def __post_init__(self):
        at_least("curriculum_warmup_epochs", self.curriculum_warmup_epochs, 0)
        for name in ("curriculum_start", "curriculum_end"):
            bounds = getattr(self, name)
            if len(bounds) != 2 or not 0.0 <= bounds[0] < bounds[1] <= 1.0:
                raise ConfigError(name, f"must be [min t, max t] with 0 <= min < max <= 1, got {list(bounds)}")
        at_least("jitter_std", self.jitter_std, 0.0)
        at_least("noise_augmentation_std", self.noise_augmentation_std, 0.0)
        at_least("feature_std", self.feature_std, 0.0)
        unknown = set(self.feature_layers) - {"encoder", "mid", "decoder"}
        if unknown or not self.feature_layers:
            raise ConfigError("feature_layers",
                              f"must be some of encoder, mid, decoder, got {list(self.feature_layers)}")
        within("self_conditioning_prob", self.self_conditioning_prob, 0.0, 1.0)
        at_least("self_conditioning_weight", self.self_conditioning_weight, 0.0)


@dataclass(frozen=True)
class SpaceConfig:
    """seed "Spaces": PixelSpace (the default); SpaceToDepthSpace and WaveletSpace, exact
    rearrangements of the pixels at half the sides (trainables/families/diffusion_spaces.py); or
    LatentSpace, the frozen autoencoder of a trained medgen_compression checkpoint
    (trainables/families/latent_space.py)."""

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
            raise ConfigError("augmented_diffusion", f"masks latent channels; space.name={self.name} has none "
                                                     "(use space.name=latent with a DC-AE 1.5 checkpoint)")
        if self.name == "latent" and not self.checkpoint:
            raise ConfigError("checkpoint", "is required for space.name=latent (a medgen_compression checkpoint folder)")
        for name in ("checkpoint", "seg_checkpoint"):
            if getattr(self, name) and not os.path.isdir(getattr(self, name)):
                raise ConfigError(name, f"{getattr(self, name)}: no such folder")

    @property
    def shrink(self) -> int:
        """How many times the space shrinks each side before the network sees it (latent: checked
        against its autoencoder in check_data)."""
        return {"space_to_depth": self.factor, "wavelet": 2}.get(self.name, 1)


@dataclass(frozen=True)
class EvalConfig:
    seed: int = 12345  # the fixed validation timesteps and noise, the same for every trial
    msssim: bool = True
    # seed logging.lpips (true): LPIPS needs an ImageNet AlexNet, a local torchvision-layout state dict
    # (nothing is downloaded); "" = not computed. 2D images only, as in the seed.
    lpips_weights: str = ""

    def __post_init__(self):
        at_least("seed", self.seed, 0)


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling images from noise with the trained network, and judging the samples (seed
    "Generation Quality Metrics"; trainables/families/medgen_generation.py). `metrics` generates
    `samples` images at every validation (train.val_every) and reports their KID against the
    training and the validation images (ResNet-50 features from `resnet_weights`) and, where
    `clip_dir` is given, their CMMD (CLIP embeddings). Both weights are local files: nothing is
    downloaded. `objective` "kid" ranks runs by KID against the validation images instead of the
    one-step MSE."""

    num_steps: int = 25  # seed "generation_num_steps: 25": Euler steps (RFlow) or denoising steps (DDPM)
    seed: int = 0  # not in the seed: the generated samples' noise, the same for every trial
    metrics: bool = False  # seed generation_metrics.enabled (it needs the extractors' weights)
    samples: int = 100  # seed "Full-batch rounding: 100 samples"
    kid_subsets: int = 100  # torchmetrics' KID default
    kid_subset_size: int = 50  # not in the seed: half the samples (subsets of all of them would all be the same)
    resnet_weights: str = ""  # a torchvision-layout ResNet-50 state dict (ImageNet or RadImageNet)
    clip_dir: str = ""  # a transformers CLIP vision model folder (BiomedCLIP converted); "" = no CMMD
    objective: Literal["mse", "kid"] = "mse"  # not in the seed, which logs KID and ranks by neither
    # seed "Overfitting Detection": KID_train falling while KID_val rises, for this many validations
    # in a row, is reported as health/kid_overfit_evals; with stop_on_overfit it stops the run
    patience: int = 3  # not in the seed (it names the signal, not a count)
    stop_on_overfit: bool = False  # not in the seed: reported only, unless asked
    # seed Generation/extended_* "at figure_interval": named there, not defined; here the same metrics
    # of `extended_samples` samples (a steadier estimate) every `extended_every` epochs; 0 = off
    extended_every: int = 0  # not in the seed (its figure_interval)
    extended_samples: int = 400  # not in the seed

    def __post_init__(self):
        at_least("num_steps", self.num_steps, 1)
        at_least("seed", self.seed, 0)
        at_least("samples", self.samples, 4)
        at_least("kid_subsets", self.kid_subsets, 1)
        at_least("kid_subset_size", self.kid_subset_size, 2)
        at_least("patience", self.patience, 1)
        at_least("extended_every", self.extended_every, 0)
        at_least("extended_samples", self.extended_samples, self.kid_subset_size)
        if self.kid_subset_size > self.samples:
            raise ConfigError("kid_subset_size", f"{self.kid_subset_size} is more than the {self.samples} samples")
        if self.objective == "kid" and not self.metrics:
            raise ConfigError("objective", "kid needs generation.metrics=true (and generation.resnet_weights)")
        if self.metrics and not self.resnet_weights:
            raise ConfigError("resnet_weights", "generation.metrics needs a local ResNet-50 weights file "
                                                "(torchvision layout); nothing is downloaded")
        if self.resnet_weights and not os.path.isfile(self.resnet_weights):
            raise ConfigError("resnet_weights", f"{self.resnet_weights}: no such file")
        if self.clip_dir and not os.path.isdir(self.clip_dir):
            raise ConfigError("clip_dir", f"{self.clip_dir}: no such folder")


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
    space: SpaceConfig = field(default_factory=SpaceConfig)
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
        if loss.perceptual_weight > 0 and self.space.name != "pixel":
            raise ConfigError("loss.perceptual_weight", f"is pixel space only; set it to 0 with space.name={self.space.name}")
        if self.data.mode == "bravo_seg_cond" and (self.space.name != "latent" or not self.space.seg_checkpoint):
            raise ConfigError("data.mode", "bravo_seg_cond is latent diffusion conditioned on the mask's latent (seed): "
                                           "set space.name=latent, space.checkpoint and space.seg_checkpoint")
        if self.space.seg_checkpoint and self.data.mode != "bravo_seg_cond":
            raise ConfigError("space.seg_checkpoint", f"encodes the masks of data.mode=bravo_seg_cond; data.mode "
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
        if self.space.name != "latent":  # the UNet denoises the images themselves (latents: check_data)
            self.check_images_fit_the_network()
        self.check_augmentation()

    def check_augmentation(self) -> None:
        """ScoreAug and SDA are alternatives (seed: "Do NOT use SDA and ScoreAug together"); a
        rotation needs a square H-W plane."""
        if self.score_aug.enabled and self.sda.enabled:
            raise ConfigError("sda.enabled", "and score_aug.enabled serve one purpose two ways: use one")
        moved = "score_aug.enabled" if self.score_aug.enabled else "sda.enabled" if self.sda.enabled else ""
        if moved and self.space.name in ("space_to_depth", "wavelet"):
            # a rotation or flip of the rearranged cells is not the rotated image's rearrangement
            raise ConfigError(moved, f"rotates and flips the network's input, which in space.name={self.space.name} "
                                     "is not an image: use space.name=pixel")
        rotates = (self.score_aug.enabled and self.score_aug.rotation) or (self.sda.enabled and self.sda.rotation)
        _, described, sides = image_sides(self.data, self.model.spatial_dims)
        if rotates and sides[0] != sides[1]:
            raise ConfigError("score_aug.rotation" if self.score_aug.enabled else "sda.rotation",
                              f"turns the H-W plane by 90 degrees, which {described} images of {list(sides)} "
                              "do not fit (H != W); turn rotation off")

    def check_images_fit_the_network(self) -> None:
        """In space_to_depth and wavelet space the UNet sees every side shrunk by the space's factor."""
        name, described, sides = image_sides(self.data, self.model.spatial_dims)
        shrink = self.space.shrink
        if any(side % shrink for side in sides):
            raise ConfigError(name, f"{described} images do not fit space.name={self.space.name}, which shrinks "
                                    f"every side {shrink}x: each must be a multiple of {shrink}")
        seen = tuple(side // shrink for side in sides)
        if why := self.model.misfit(seen):
            where = f" (in {self.space.name} space, {'x'.join(map(str, seen))})" if shrink > 1 else ""
            raise ConfigError(name, f"{described} images{where} {why}")


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
    "space_to_depth": {"space": {"name": "space_to_depth"}},
    "wavelet": {"space": {"name": "wavelet"}, "model": {"spatial_dims": 3}},
}

SMOKE = {"data": {"subjects": 4, "phantom_shape": [32, 32, 24], "image_size": 32, "volume": [32, 32, 32]},
         "model": {"widths": [16, 32, 32], "attention": [False, False, True], "norm_groups": 8, "head_channels": 8},
         "schedule": {"warmup_epochs": 1.0}, "train": {"epochs": 2, "batch_size": 8},
         "generation": {"samples": 8, "kid_subsets": 10, "kid_subset_size": 4, "num_steps": 2}}
