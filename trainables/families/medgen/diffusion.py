"""medgen_diffusion family (seed 001, MedGen): DDPM or RFlow diffusion on MONAI's UNet or a DiT, HDiT
or UViT (`model.kind`, trainables/families/medgen/denoisers.py), 2D slices or 3D volumes from NIfTI
subjects, in the seed's modes seg (1->1), bravo (2->1) and dual (3->2), in pixel, space-to-depth,
wavelet or latent space (`representation.name`, trainables/families/medgen/representations.py; in the latent of a
DC-AE 1.5 with augmented diffusion, `representation.augmented_diffusion`).

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

import torch

from losstune.losses.diffusion import augment_noise, min_snr_weights, model_timesteps, per_sample_mse, snr, target, x0_estimate
from losstune.data.medgen_modes import MODE_IMAGES, mode_channels  # numpy and torch only
from losstune.losses.tumour_size import BINS as SIZE_BINS
from losstune.trainables.config import ConfigError
from losstune.trainables.family_api import Objective, Parts
from losstune.trainables.families.medgen import (diffusion_config as settings, diffusion_val as validation,
                                                 generation as medgen_generation)
from losstune.trainables.families.medgen.augment import draw_batch, each, omega_classes, sda_transforms
from losstune.trainables.families.medgen.representations import diffused, moved_condition, space_of
from losstune.trainables.families.medgen.diffusion_val import BIN_NAMES, FixedDraws
from losstune.models.medgen_compression import channel_mask
from losstune.trainables.families.medgen.latent_representation import augmented_counts, autoencoder, check_fits
from losstune.trainables.families.medgen.items import check_subjects, item_size, make_items, subject_split
from losstune.trainables.families.medgen.steps import (TORCHVISION_NEEDED, check_lpips, perceptual_term, predict,
                                                       scheduler_of, self_conditioning, training_times, uses_perceptual)
from losstune.models.feature_extractors import check_resnet50_weights
from losstune.models.medgen import add_feature_noise
import importlib.util

OBJECTIVE = Objective("val/mse", "min")  # written to TensorBoard as Loss/MSE_val (TAGS)
WATCHED_VAL_METRICS = ("timestep_bin_ratio",)
# each loss weight whose term only exists while a switch is on (a sweep warns when it tunes one that is off)
TERM_SWITCHES = {"regularisation.self_conditioning_weight": "regularisation.self_conditioning",
                 "sda.weight": "sda.enabled"}
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
    **{f"val/{size}_loss": f"regional/{size}" for size in SIZE_BINS},  # seed: per-pixel error by tumour size
    **{f"val/psnr_{m}": f"Validation/PSNR_{m}" for m in IMAGE_MODALITIES},
    **{f"val/msssim_{m}": f"Validation/MS-SSIM_{m}" for m in IMAGE_MODALITIES},
    **{f"val/msssim_3d_{m}": f"Validation/MS-SSIM-3D_{m}" for m in IMAGE_MODALITIES},
    "val/lpips": "Validation/LPIPS", **{f"val/lpips_{m}": f"Validation/LPIPS_{m}" for m in IMAGE_MODALITIES},
    **{f"val/{m}_{name}": f"regional_{m}/{name}" for m in IMAGE_MODALITIES for name in REGIONAL},
    "grad_norm": "training/grad_norm_avg", "grad_norm_max": "training/grad_norm_max", "lr": "LR/Generator",
    **{f"val/t{name}": f"Timestep/{name}" for name in BIN_NAMES},
    # seed "Generation Quality Metrics" (trainables/families/medgen/generation.py)
    **{f"val/kid_{stat}_{split}": f"Generation/KID_{stat}_{split}" for stat in ("mean", "std") for split in ("train", "val")},
    "val/cmmd_train": "Generation/CMMD_train", "val/cmmd_val": "Generation/CMMD_val",
    **{f"val/extended_kid_{stat}_{split}": f"Generation/extended_KID_{stat}_{split}"
       for stat in ("mean", "std") for split in ("train", "val")},
    "val/extended_cmmd_train": "Generation/extended_CMMD_train", "val/extended_cmmd_val": "Generation/extended_CMMD_val",
    "val/generation_s": "time/generation_s", "val/fid_val": "test_latest/FID",  # the last epoch's samples
}
KID_OBJECTIVE = Objective("val/kid_mean_val", "min")  # generation.objective=kid


# the family's settings, under the names the contract reads (trainables/family_api.py)
Config, PRESETS, SMOKE = settings.Config, settings.PRESETS, settings.SMOKE
model_metrics = medgen_generation.model_metrics  # KID / CMMD of generated samples, where generation.metrics
val_metrics, summarise_val = validation.val_metrics, validation.summarise_val  # at fixed draws per timestep bin


def objective_for(cfg):
    """KID of generated samples against the validation images where generation.objective is kid."""
    return KID_OBJECTIVE if cfg.generation.objective == "kid" else None


# --- data ------------------------------------------------------------------------------------------

def check_data(cfg) -> int:
    """Every file read and checked once, before Ray starts (trainables/families/medgen/items.py); returns
    the number of training items (slices in 2D)."""
    if uses_perceptual(cfg) and importlib.util.find_spec("torchvision") is None:
        raise ConfigError("loss.perceptual_weight", TORCHVISION_NEEDED)
    check_lpips(cfg, MODE_IMAGES[cfg.data.mode])
    check_extractor(cfg)
    if latent(cfg):
        check_fits(cfg)
        check_latent_fits_the_network(cfg)
    return check_subjects(cfg, cfg.data.mode)


def check_extractor(cfg) -> None:
    """The generation metrics' ResNet-50, read once: unloadable weights made every trial die at its
    first validation, untrained ones gave a KID that ranks by nothing."""
    if cfg.generation.metrics and (why := check_resnet50_weights(cfg.generation.resnet_weights)):
        raise ConfigError("generation.resnet_weights", why)


def check_latent_fits_the_network(cfg) -> None:
    """Each UNet level after the first halves the latent, a transformer cuts it into patches: its
    sides must stay whole numbers."""
    size = item_size(cfg)
    images = torch.zeros(1, len(MODE_IMAGES[cfg.data.mode]), *size)
    shape = tuple(autoencoder(cfg.representation.checkpoint).encode(images).shape[2:])
    if why := cfg.model.misfit(shape):
        field = "model.widths" if cfg.model.kind == "unet" else "model.patch_size"
        raise ConfigError(field, f"the autoencoder of {cfg.representation.checkpoint} makes latents of {list(shape)} "
                                 f"from {list(size)}, which {why}: use a smaller network or larger images")


def build(cfg) -> Parts:
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from losstune.trainables.families.medgen.denoisers import denoiser

    mode = cfg.data.mode
    train_subjects, val_subjects = subject_split(cfg, mode)
    train_set, val_items = make_items(cfg, train_subjects, cfg.data.augment, mode), make_items(cfg, val_subjects, False, mode)
    channels_in, channels_out = mode_channels(mode)
    noise_shape = None  # the images' (every item's shape is the same)
    if cfg.representation.name != "pixel":  # the network denoises the space's cells, conditioned on the mask moved there
        image, cond = val_items[0][0][None], val_items[0][1][None]
        z = space_of(cfg).encode(image)
        noise_shape = tuple(z.shape[1:])
        conditioning = moved_condition(cfg, space_of(cfg), cond, z).shape[1]
        channels_in, channels_out = noise_shape[0] + conditioning, noise_shape[0]
    sides = (noise_shape or tuple(val_items[0][0].shape))[1:]
    model = denoiser(cfg, channels_in, channels_out, sides, omega_classes(cfg))
    r = cfg.regularisation
    if r.feature_perturbation:
        add_feature_noise(model, r.feature_layers, r.feature_std)
    return Parts(model, train_set, FixedDraws(val_items, cfg.eval.seed, noise_shape), {})


def latent(cfg) -> bool:
    return cfg.representation.name == "latent"


# --- loss --------------------------------------------------------------------------------------------


def term_weights(cfg) -> dict:
    """The weight of each term this config computes."""
    weights = {"mse": 1.0, **({"sda": cfg.sda.weight} if cfg.sda.enabled else {})}
    if uses_perceptual(cfg):
        weights["perceptual"] = cfg.loss.perceptual_weight
    if cfg.regularisation.self_conditioning:
        weights["self_cond"] = cfg.regularisation.self_conditioning_weight
    return weights


def on_epoch_start(model, epoch: int, cfg) -> None:
    model.epoch.fill_(epoch)  # the curriculum's clock


def loss_terms(model, batch, cfg):
    x0, cond = diffused(cfg, *batch[:2])
    strategy, r = cfg.strategy.name, cfg.regularisation
    scheduler = scheduler_of(cfg)
    inner = getattr(model, "module", model)  # the DiffusionNet under DDP
    t = training_times(cfg, scheduler, x0, int(inner.epoch))
    timesteps = model_timesteps(strategy, t, scheduler.num_train_timesteps)
    noise = torch.randn_like(x0)
    if r.noise_augmentation:
        noise = augment_noise(noise, r.noise_augmentation_std)
    keep = None
    if cfg.representation.augmented_diffusion:  # DC-AE 1.5: each sample noised and judged on its first c' channels
        keep = channel_mask(x0, augmented_counts(cfg))
        x0, noise = x0 * keep, noise * keep
    # what the network sees and must predict: x_t (the scheduler's noising of x0, as MONAI's
    # DiffusionInferer makes it) and the strategy's target, under ScoreAug both transformed alike
    x_t, goal, clean, omega, invertible = score_augmented(cfg, scheduler.add_noise(x0, noise, timesteps),
                                                          target(strategy, x0, noise), x0, cond)

    def forward(network):
        return network(torch.cat([x_t, clean["cond"]], 1), timesteps, omega=omega)

    prediction = forward(model)
    mse = per_sample_mse(prediction, goal, keep)
    # the plain MSE, comparable across trials whatever their gamma (the seed's Loss/MSE_train)
    stats = {"t_mean": t.mean().detach(), "mse_plain": mse.mean().detach()}
    if cfg.loss.min_snr_gamma:
        mse = mse * min_snr_weights(snr(strategy, scheduler, timesteps), cfg.loss.min_snr_gamma)
    terms = {"mse": mse.mean()}
    if uses_perceptual(cfg):  # seed: skipped under a transform whose original space cannot be recovered
        terms["perceptual"] = perceptual_term(cfg, x0_estimate(strategy, scheduler, x_t, prediction, timesteps),
                                              clean["x0"]) if invertible else prediction.new_zeros(())
    if r.self_conditioning:
        terms["self_cond"] = self_conditioning(lambda: forward(inner), prediction, r.self_conditioning_prob)
    if cfg.sda.enabled:
        terms["sda"] = shifted_path(model, cfg, scheduler, x0, cond, t)
    return terms, stats


def score_augmented(cfg, x_t, goal, x0, cond) -> tuple:
    """(x_t, target, {"x0", "cond"}, omega, whether every transform is invertible): as they are
    without ScoreAug; with it, each sample's transform applied to all four, and its omega index
    where the network is conditioned on it."""
    if not cfg.score_aug.enabled:
        return x_t, goal, {"x0": x0, "cond": cond}, None, True
    transforms = draw_batch(cfg.score_aug, x_t)
    omega = torch.tensor([t.omega for t in transforms], device=x_t.device) if omega_classes(cfg) else None
    return (each(transforms, x_t), each(transforms, goal), {"x0": each(transforms, x0), "cond": each(transforms, cond)},
            omega, all(t.invertible for t in transforms))


def shifted_path(model, cfg, scheduler, x0, cond, t) -> torch.Tensor:
    """SDA's term: with probability sda.prob, the MSE of the path whose clean image (and mask) is
    rotated or flipped and noised at t + noise_shift (at most 1), with noise of its own; else 0."""
    sda = cfg.sda
    if torch.rand(()) >= sda.prob:
        return x0.new_zeros((), dtype=torch.float32)
    transforms = sda_transforms(sda, len(x0))
    shifted = model_timesteps(cfg.strategy.name, (t + sda.noise_shift).clamp(max=1.0), scheduler.num_train_timesteps)
    x0_moved, noise = each(transforms, x0), torch.randn_like(x0)
    prediction = predict(model, x0_moved, noise, shifted, each(transforms, cond), scheduler)
    return per_sample_mse(prediction, target(cfg.strategy.name, x0_moved, noise)).mean()


def stop_reason(metrics, cfg) -> str:
    h, g = cfg.health, cfg.generation
    if h.max_bin_ratio and metrics["epoch"] > h.grace_epochs and metrics["health/timestep_bin_ratio"] > h.max_bin_ratio:
        return "timestep_bin_blowup"
    if g.stop_on_overfit and metrics.get("val/kid_overfit_evals", 0) >= g.patience:
        return "generation_overfitting"  # seed: KID_train falling while KID_val rises
    return ""
