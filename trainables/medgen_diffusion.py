"""medgen_diffusion family (seed 001, MedGen): DDPM or RFlow diffusion on MONAI's UNet, 2D slices or
3D volumes from NIfTI subjects, in the seed's modes seg (1->1), bravo (2->1) and dual (3->2).

Training loss: MSE(prediction, strategy target), optionally Min-SNR weighted, + perceptual_weight x
perceptual (seed default 0; never in seg mode) + self-conditioning consistency. The seed's clean
regularisers are flags here (curriculum, timestep jitter, noise augmentation, feature perturbation,
self-conditioning); gradient noise, SAM/ASAM and EMA are the shared loop's optimiser options
(`optim.grad_noise_sigma`, `optim.sam_rho`, `optim.ema_decay`), constant and plateau LR its
schedule kinds.

Objective: `val/mse` (the seed's `Loss/MSE_val`), the unweighted prediction MSE at fixed, seeded timesteps (one per
tenth of [0, 1]) and noise per validation item, so every trial is measured on the same draws
whatever its loss weights and tricks. TensorBoard files carry the seed's tag names (TAGS).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from typing import Literal

import torch

from losstune.losses.diffusion import (augment_noise, curriculum_range, jitter, make_noise_scheduler, min_snr_weights, model_timesteps,
                              per_sample_mse, sample_t, snr, squeeze_into, target, x0_estimate)
from losstune.data import DataError
from losstune.data.medgen import EMPTY_SLICE_LEVEL, MODE_IMAGES, mode_channels  # numpy and torch only
from losstune.losses.image_quality import msssim, per_channel, psnr, regional_errors, regional_sums, slicewise_msssim
from losstune.trainables.config import ConfigError, at_least, within
from losstune.trainables.loop_config import OptimConfig, ScheduleConfig, TrainConfig, check_unet_sizes
from losstune.trainables.family_api import Objective, Parts

TORCHVISION_NEEDED = ("> 0 needs torchvision (MONAI's ResNet-50 perceptual network), which losstune does not "
                      "install; install the torchvision build that matches your torch")
FAKE_3D_RATIO = 0.25  # seed "3D VAE": 2.5D perceptual loss on 25% of the slices
BINS = 10  # seed "Timestep Metrics": Timestep/0.0-0.1 ... Timestep/0.9-1.0
BIN_NAMES = [f"{k / BINS:.1f}-{(k + 1) / BINS:.1f}" for k in range(BINS)]
OBJECTIVE = Objective("val/mse", "min")  # written to TensorBoard as Loss/MSE_val (TAGS)
WATCHED_VAL_METRICS = ("timestep_bin_ratio",)
# each loss weight whose term only exists while a switch is on (a sweep warns when it tunes one that is off)
TERM_SWITCHES = {"regularisation.self_conditioning_weight": "regularisation.self_conditioning"}
REGIONAL = ("tumor_loss", "background_loss", "tumor_bg_ratio")
IMAGE_MODALITIES = sorted({m for images in MODE_IMAGES.values() for m in images})
# the loop's metric names -> the seed's tag names (seed "TensorBoard Metrics (Verified)"): overall,
# and per generated modality (`Validation/PSNR_t1_pre`, `regional_bravo/tumor_loss`, ...)
TAGS = {
    # Loss/MSE_train is the plain MSE; the term trained on, Min-SNR weighted where gamma > 0, beside it
    "health/mse_plain": "Loss/MSE_train", "train/mse": "Loss/MSE_train_min_snr", "train/loss": "Loss/Total_train",
    "train/perceptual": "Loss/Perceptual_train",
    "val/mse": "Loss/MSE_val", "val/total": "Loss/Total_val", "val/l1": "Loss/L1_val", "val/psnr": "Validation/PSNR",
    "val/msssim": "Validation/MS-SSIM", "val/msssim_3d": "Validation/MS-SSIM-3D",
    **{f"val/{name}": f"regional/{name}" for name in REGIONAL},
    **{f"val/psnr_{m}": f"Validation/PSNR_{m}" for m in IMAGE_MODALITIES},
    **{f"val/msssim_{m}": f"Validation/MS-SSIM_{m}" for m in IMAGE_MODALITIES},
    **{f"val/msssim_3d_{m}": f"Validation/MS-SSIM-3D_{m}" for m in IMAGE_MODALITIES},
    **{f"val/{m}_{name}": f"regional_{m}/{name}" for m in IMAGE_MODALITIES for name in REGIONAL},
    "grad_norm": "training/grad_norm_avg", "grad_norm_max": "training/grad_norm_max", "lr": "LR/Generator",
    **{f"val/t{name}": f"Timestep/{name}" for name in BIN_NAMES},
}


@dataclass(frozen=True)
class DataConfig:
    path: str = ""  # a folder of subject folders with <modality>.nii(.gz); "" = synthetic phantoms
    val_path: str = ""  # a second such folder; "" = the last `val_fraction` of path's subjects
    val_fraction: float = 0.2  # held out by subject, never by slice, so no subject is in both
    mode: Literal["seg", "bravo", "dual"] = "bravo"  # seed "Diffusion Modes"
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
class ModelConfig:
    """seed "Model Architectures: UNet": channels [128, 256, 256], attention [false, true, true],
    num_res_blocks 1; the head size is MONAI's default (the seed names none)."""

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

    def __post_init__(self):
        if self.spatial_dims not in (2, 3):
            raise ConfigError("spatial_dims", f"must be 2 or 3, got {self.spatial_dims}")
        check_unet_sizes(self)


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
class EvalConfig:
    seed: int = 12345  # the fixed validation timesteps and noise, the same for every trial
    msssim: bool = True

    def __post_init__(self):
        at_least("seed", self.seed, 0)


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
    loss: LossConfig = field(default_factory=LossConfig)
    regularisation: RegularisationConfig = field(default_factory=RegularisationConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
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
        if loss.perceptual_weight > 0 and self.data.mode != "seg" and not loss.perceptual_weights_path:
            raise ConfigError("loss.perceptual_weights_path",
                              "is required when loss.perceptual_weight > 0: pretrained perceptual weights cannot "
                              "be downloaded here; give a local ResNet-50 state dict")
        if loss.perceptual_weights_path and not os.path.isfile(loss.perceptual_weights_path):
            raise ConfigError("loss.perceptual_weights_path", f"{loss.perceptual_weights_path}: no such file")


PRESETS = {
    "small": {  # a network a CPU can train: widths / 4
        "model": {"widths": [32, 64, 64], "attention": [False, False, True], "norm_groups": 16, "head_channels": 16}},
    "regularised": {  # every clean regulariser at the seed's parameters (IDUN exp20-25)
        "regularisation": {"curriculum": True, "timestep_jitter": True, "noise_augmentation": True,
                           "feature_perturbation": True, "self_conditioning": True},
        "optim": {"grad_noise_sigma": 0.01, "grad_noise_decay": 0.55}},
    "sam": {"optim": {"sam_rho": 0.05}},  # seed "SAM Optimizer" (IDUN exp11_1)
}

SMOKE = {"data": {"subjects": 4, "phantom_shape": [32, 32, 24], "image_size": 32, "volume": [32, 32, 32]},
         "model": {"widths": [16, 32, 32], "attention": [False, False, True], "norm_groups": 8, "head_channels": 8},
         "schedule": {"warmup_epochs": 1.0}, "train": {"epochs": 2, "batch_size": 8}}


# --- data ------------------------------------------------------------------------------------------

class FixedDraws:
    """Validation items with their own fixed noise (one per timestep bin) and offsets within the
    bins, drawn from (eval.seed, item index): the same for every trial, epoch and worker layout."""

    def __init__(self, items, seed: int):
        self.items, self.seed = items, seed

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        image, cond, seg = self.items[index]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        noise = torch.randn((BINS, *image.shape), generator=generator)
        return image, cond, seg, noise, torch.rand(BINS, generator=generator)


def subject_split(cfg):
    """(train subjects, validation subjects) of the configured (or phantom) folders."""
    from losstune.data.medgen import list_subjects, modalities_for, phantom_folder

    d = cfg.data
    path = d.path or phantom_folder(d.subjects, tuple(d.phantom_shape), d.seed)
    subjects = list_subjects(path, modalities_for(d.mode))
    if d.val_path:
        return subjects, list_subjects(d.val_path, modalities_for(d.mode))
    held_out = max(1, int(round(d.val_fraction * len(subjects))))
    if held_out >= len(subjects):
        raise ConfigError("data.path", f"{path}: {len(subjects)} subject(s) are too few to hold some out")
    return subjects[:-held_out], subjects[-held_out:]


def check_data(cfg) -> int:
    """Every file read and checked once, before Ray starts, with the read a trial makes (which
    then finds it in data.medgen's cache); returns the number of training items (slices in 2D).
    A validation set with no item is refused here, naming its subjects."""
    import importlib.util

    from losstune.data.medgen import load_volumes

    if uses_perceptual(cfg) and importlib.util.find_spec("torchvision") is None:
        raise ConfigError("loss.perceptual_weight", TORCHVISION_NEEDED)
    train_subjects, val_subjects = subject_split(cfg)
    train_items = len(training_items(cfg, load_volumes(train_subjects, cfg.data.mode)))
    if not training_items(cfg, load_volumes(val_subjects, cfg.data.mode)):
        folder = os.path.dirname(os.path.dirname(val_subjects[0].files["seg"]))
        raise DataError(f"{folder}: the held-out subjects ({', '.join(s.name for s in val_subjects)}) have no slice "
                        f"above the empty-slice level {EMPTY_SLICE_LEVEL}: nothing to validate on")
    return train_items


def training_items(cfg, volumes: list[dict]) -> list[dict]:
    """What a dataset is built from: a 2D run's axial slices (without the empty ones, where the
    mode skips them), a 3D run's volumes."""
    from losstune.data.medgen import axial_slices

    if cfg.model.spatial_dims == 3:
        return volumes
    return axial_slices(volumes, cfg.data.skip_empty_slices and cfg.data.mode != "seg")


def make_items(cfg, subjects, augment: bool):
    from losstune.data.medgen import Items, load_volumes

    d, spatial_dims = cfg.data, cfg.model.spatial_dims
    items = training_items(cfg, load_volumes(subjects, d.mode))  # seg mode keeps empty slices: DataConfig
    size = (d.image_size,) * 2 if spatial_dims == 2 else tuple(d.volume)
    return Items(items, spatial_dims, size, augment, d.mode == "seg", seed=cfg.train.seed)


def build(cfg) -> Parts:
    from losstune.models.medgen import DiffusionNet, add_feature_noise

    train_subjects, val_subjects = subject_split(cfg)
    m, r = cfg.model, cfg.regularisation
    model = DiffusionNet(m.spatial_dims, *mode_channels(cfg.data.mode), m.widths, m.attention, m.res_blocks, m.norm_groups,
                         m.head_channels, m.flash_attention)
    if r.feature_perturbation:
        add_feature_noise(model.unet, r.feature_layers, r.feature_std)
    return Parts(model, make_items(cfg, train_subjects, cfg.data.augment),
                 FixedDraws(make_items(cfg, val_subjects, augment=False), cfg.eval.seed), {})


# --- loss --------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def noise_scheduler(strategy: str, steps: int, spatial_dims: int, base_size: int, transform: bool):
    return make_noise_scheduler(strategy, steps, spatial_dims, base_size, transform)


def scheduler_of(cfg):
    s = cfg.strategy
    return noise_scheduler(s.name, s.num_train_timesteps, cfg.model.spatial_dims, s.transform_base_size,
                           s.timestep_transform)


@functools.lru_cache(maxsize=8)
def inferer_for(scheduler):
    """MONAI's DiffusionInferer: noise added by the scheduler, the conditioning concatenated to the
    noisy image, the network's forward."""
    from monai.inferers import DiffusionInferer

    return DiffusionInferer(scheduler)


def predict(model, x0, noise, timesteps, cond, scheduler) -> torch.Tensor:
    """The model's prediction at x_t = the scheduler's noising of x0, conditioned by concatenation."""
    return inferer_for(scheduler)(x0, model, noise, timesteps, condition=cond, mode="concat")


@functools.lru_cache(maxsize=2)
def perceptual_network(spatial_dims: int, weights_path: str):
    """MONAI's PerceptualLoss on a torchvision ResNet-50 loaded from a local file; for volumes 2.5D
    on 25% of the slices, as the seed's 3D VAE ("2.5D perceptual loss (sample 25% slices)"; MONAI's
    default is half). torchvision is not a dependency of losstune: its PyPI build needs a newer
    torch than the CPU build this project pins."""
    try:
        import torchvision  # noqa: F401
    except ImportError as err:
        raise ConfigError("loss.perceptual_weight", TORCHVISION_NEEDED) from err
    from monai.losses import PerceptualLoss

    network = PerceptualLoss(spatial_dims=spatial_dims, network_type="resnet50", is_fake_3d=spatial_dims == 3,
                             fake_3d_ratio=FAKE_3D_RATIO, pretrained=True, pretrained_path=weights_path)
    return network.eval().requires_grad_(False)


def uses_perceptual(cfg) -> bool:
    return cfg.loss.perceptual_weight > 0 and cfg.data.mode != "seg"  # seed: seg mode disables it


def perceptual_term(cfg, estimate: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    network = perceptual_network(cfg.model.spatial_dims, cfg.loss.perceptual_weights_path).to(x0.device)
    channels = [network(estimate[:, c:c + 1].float(), x0[:, c:c + 1].float()) for c in range(x0.shape[1])]
    return torch.stack(channels).mean()


def term_weights(cfg) -> dict:
    """The weight of each term this config computes."""
    weights = {"mse": 1.0}
    if uses_perceptual(cfg):
        weights["perceptual"] = cfg.loss.perceptual_weight
    if cfg.regularisation.self_conditioning:
        weights["self_cond"] = cfg.regularisation.self_conditioning_weight
    return weights


def on_epoch_start(model, epoch: int, cfg) -> None:
    model.epoch.fill_(epoch)  # the curriculum's clock


def training_times(cfg, scheduler, x0: torch.Tensor, epoch: int) -> torch.Tensor:
    """The strategy's t, squeezed into the curriculum's range and jittered where configured."""
    r = cfg.regularisation
    t = sample_t(cfg.strategy.name, scheduler, x0)
    if r.curriculum:
        t = squeeze_into(t, *curriculum_range(epoch, r.curriculum_warmup_epochs, r.curriculum_start,
                                              r.curriculum_end))
    if r.timestep_jitter:
        t = jitter(t, r.jitter_std)
    return t


def loss_terms(model, batch, cfg):
    x0, cond, _ = batch
    strategy, r = cfg.strategy.name, cfg.regularisation
    scheduler = scheduler_of(cfg)
    inner = getattr(model, "module", model)  # the DiffusionNet under DDP
    t = training_times(cfg, scheduler, x0, int(inner.epoch))
    timesteps = model_timesteps(strategy, t, scheduler.num_train_timesteps)
    noise = torch.randn_like(x0)
    if r.noise_augmentation:
        noise = augment_noise(noise, r.noise_augmentation_std)
    prediction = predict(model, x0, noise, timesteps, cond, scheduler)
    mse = per_sample_mse(prediction, target(strategy, x0, noise))
    # the plain MSE, comparable across trials whatever their gamma (the seed's Loss/MSE_train)
    stats = {"t_mean": t.mean().detach(), "mse_plain": mse.mean().detach()}
    if cfg.loss.min_snr_gamma:
        mse = mse * min_snr_weights(snr(strategy, scheduler, timesteps), cfg.loss.min_snr_gamma)
    terms = {"mse": mse.mean()}
    if uses_perceptual(cfg):
        x_t = scheduler.add_noise(x0, noise, timesteps)
        terms["perceptual"] = perceptual_term(cfg, x0_estimate(strategy, scheduler, x_t, prediction, timesteps), x0)
    if r.self_conditioning:
        terms["self_cond"] = self_conditioning(
            lambda: predict(inner, x0, noise, timesteps, cond, scheduler), prediction, r.self_conditioning_prob)
    return terms, stats


def self_conditioning(reference_pass, prediction, prob: float) -> torch.Tensor:
    """seed "Self-Conditioning via Consistency": with probability `prob` a second pass without
    gradient gives P1, and the term is MSE(prediction, P1); else 0. The two passes differ only by
    the forward pass's own randomness (feature perturbation), without which the term is 0.

    The second pass runs on the network itself, not its DDP wrapper: each worker draws whether to
    take it, and a DDP forward is a collective (it broadcasts the buffers) that a worker without
    the pass would never join."""
    if torch.rand(()) >= prob:
        return prediction.new_zeros((), dtype=torch.float32)
    with torch.no_grad():
        reference = reference_pass()
    return (prediction.float() - reference.float()).pow(2).mean()


# --- validation ---------------------------------------------------------------------------------------

@torch.no_grad()
def val_metrics(model, batch, cfg, extras):
    """Per item, at its 10 fixed timesteps (one in each tenth of [0, 1]): the prediction MSE per bin
    and overall, and the quality of the one-step x0 estimates averaged over the bins (L1, PSNR,
    MS-SSIM, squared error inside and outside the tumour mask as sums, so that `summarise_val` can
    weight them by pixel), overall and per generated modality."""
    x0, cond, seg, noises, offsets = batch
    strategy, scheduler = cfg.strategy.name, scheduler_of(cfg)
    out = {}
    estimates = []
    for k in range(BINS):
        t = (k + offsets[:, k]) / BINS
        timesteps = model_timesteps(strategy, t, scheduler.num_train_timesteps)
        noise = noises[:, k]
        prediction = predict(model, x0, noise, timesteps, cond, scheduler)
        out[f"t{BIN_NAMES[k]}"] = per_sample_mse(prediction, target(strategy, x0, noise))
        x_t = scheduler.add_noise(x0, noise, timesteps)
        estimates.append(x0_estimate(strategy, scheduler, x_t, prediction, timesteps).float().clamp(0, 1))
    out["mse"] = torch.stack([out[f"t{name}"] for name in BIN_NAMES]).mean(0)
    out["total"] = out["mse"]
    if uses_perceptual(cfg):
        out["total"] = out["mse"] + cfg.loss.perceptual_weight * torch.stack(
            [perceptual_term(cfg, e, x0) for e in estimates]).mean()
    return {**out, **estimate_quality(estimates, x0.float(), seg, cfg)}


def estimate_quality(estimates: list, x0: torch.Tensor, seg: torch.Tensor, cfg) -> dict:
    """Seed "Validation Quality Metrics" and "Regional Metrics" of the estimates, per sample, over
    all the generated channels under the plain name and each modality's under `<name>_<modality>`
    (the same number where a mode generates one); MS-SSIM of volumes both slice by slice
    (`msssim`) and volumetric (`msssim_3d`)."""
    modalities = MODE_IMAGES[cfg.data.mode]
    volumes = cfg.model.spatial_dims == 3
    metrics = {"psnr": psnr}
    if cfg.eval.msssim:
        metrics["msssim"] = slicewise_msssim if volumes else msssim
        if volumes:
            metrics["msssim_3d"] = msssim
    out = {"l1": torch.stack([(e - x0).abs().flatten(1).mean(1) for e in estimates]).mean(0)}
    for name, metric in metrics.items():
        channels = torch.stack([per_channel(metric, e, x0) for e in estimates]).mean(0)  # [B, C] over the bins
        out.update({f"{name}_{m}": channels[:, c] for c, m in enumerate(modalities)})
        out[name] = channels[:, 0] if len(modalities) == 1 else torch.stack([metric(e, x0) for e in estimates]).mean(0)
    squared = torch.stack([(e - x0).pow(2) for e in estimates]).mean(0)
    out.update(regional_sums(squared, seg))
    for c, m in enumerate(modalities):
        out.update({f"{m}/{k}": v for k, v in regional_sums(squared[:, c:c + 1], seg).items()})
    return out


def summarise_val(means: dict, cfg) -> dict:
    """Pixel-weighted regional errors (seed "Regional Loss Tracking"; the ratio of means of sums is
    the ratio of sums), overall and per modality, and the timestep-bin health ratio."""
    out = {k: v for k, v in means.items() if not k.endswith(("_sq_sum", "_count"))}
    out.update(regional_errors(means))
    for m in MODE_IMAGES[cfg.data.mode]:
        own = {k[len(m) + 1:]: v for k, v in means.items() if k.startswith(f"{m}/")}
        out.update({f"{m}_{name}": value for name, value in regional_errors(own).items()})
    bins = sorted(means[f"t{name}"] for name in BIN_NAMES)
    median = (bins[BINS // 2 - 1] + bins[BINS // 2]) / 2
    out["timestep_bin_ratio"] = bins[-1] / median if median > 0 else math.inf
    return out


def stop_reason(metrics, cfg) -> str:
    h = cfg.health
    if h.max_bin_ratio and metrics["epoch"] > h.grace_epochs and metrics["health/timestep_bin_ratio"] > h.max_bin_ratio:
        return "timestep_bin_blowup"
    return ""
