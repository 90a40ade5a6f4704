"""medgen_diffusion's validation: every item judged at fixed, seeded timesteps and noise (one per
tenth of [0, 1]), so every trial is measured on the same draws whatever its loss weights and tricks;
the prediction MSE per timestep bin, the one-step estimates' quality overall, per modality and per
tumour size, and the summaries the loop reports (the family: trainables/families/medgen/diffusion.py)."""

from __future__ import annotations

import math

import torch

from losstune.data.medgen_modes import MODE_IMAGES
from losstune.losses.diffusion import model_timesteps, per_sample_mse, target, x0_estimate
from losstune.losses.image_quality import quality, regional_summary
from losstune.losses.tumour_size import size_errors, size_sums
from losstune.trainables.families.medgen.representations import diffused, space_of
from losstune.trainables.families.medgen.steps import lpips_of, perceptual_term, predict, scheduler_of, uses_perceptual

BINS = 10  # seed "Timestep Metrics": Timestep/0.0-0.1 ... Timestep/0.9-1.0
BIN_NAMES = [f"{k / BINS:.1f}-{(k + 1) / BINS:.1f}" for k in range(BINS)]


class FixedDraws:
    """Validation items with their own fixed noise (one per timestep bin) and offsets within the
    bins, drawn from (eval.seed, item index): the same for every trial, epoch and worker layout."""

    def __init__(self, items, seed: int, noise_shape: tuple | None = None):
        self.items, self.seed = items, seed
        self.noise_shape = noise_shape  # the latent's in latent space; None: the image's

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        image, cond, seg = self.items[index]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        noise = torch.randn((BINS, *(self.noise_shape or image.shape)), generator=generator)
        return image, cond, seg, noise, torch.rand(BINS, generator=generator), self.items.spacings[index]


@torch.no_grad()
def val_metrics(model, batch, cfg, extras):
    """Per item, at its 10 fixed timesteps (one in each tenth of [0, 1]): the prediction MSE per bin
    and overall, and the quality of the one-step x0 estimates averaged over the bins (L1, PSNR,
    MS-SSIM, squared error inside and outside the tumour mask as sums, so that `summarise_val` can
    weight them by pixel), overall and per generated modality."""
    pixels, cond, seg, noises, offsets, spacing = batch
    x0, cond = diffused(cfg, pixels, cond)
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
        estimates.append(x0_estimate(strategy, scheduler, x_t, prediction, timesteps).float())
    out["mse"] = torch.stack([out[f"t{name}"] for name in BIN_NAMES]).mean(0)
    out["total"] = out["mse"]
    # judged in pixel space, comparable with pixel-space trials
    estimates = [space_of(cfg).decode(e).float() for e in estimates]
    estimates = [e.clamp(0, 1) for e in estimates]
    if uses_perceptual(cfg):
        out["total"] = out["mse"] + cfg.loss.perceptual_weight * torch.stack(
            [perceptual_term(cfg, e, pixels) for e in estimates]).mean()
    if cfg.data.mode == "multi":  # one image an item: its modality from the one-hot maps after the mask
        one_hot = batch[1][:, 1:].flatten(2).mean(2)
        return {**out, **multi_quality(estimates, pixels.float(), seg, spacing, cfg, one_hot)}
    return {**out, **estimate_quality(estimates, pixels.float(), seg, spacing, cfg)}


def estimate_quality(estimates: list, x0: torch.Tensor, seg: torch.Tensor, spacing: torch.Tensor, cfg,
                     modalities: tuple | None = None) -> dict:
    """The quality of the one-step estimates (losses.image_quality.quality), per generated modality,
    and their squared error inside the tumours of each RANO-BM size bin (losses.tumour_size)."""
    squared = torch.stack([(e - x0).pow(2) for e in estimates]).mean(0)
    names = modalities or MODE_IMAGES[cfg.data.mode]
    return {**quality(estimates, x0, seg, names, cfg.eval.msssim, lpips_of(cfg, x0.device)),
            **size_sums(squared, seg, spacing)}


def multi_quality(estimates: list, x0: torch.Tensor, seg: torch.Tensor, spacing: torch.Tensor, cfg,
                  one_hot: torch.Tensor) -> dict:
    """multi: the quality over every item, and per modality as sums weighted by the items' one-hot
    modality (`<metric>_<modality>_wsum`, `<modality>_items`; summarise_val divides them), the
    regional sums likewise (`<modality>/<sum>`, which regional_summary reads)."""
    out = estimate_quality(estimates, x0, seg, spacing, cfg, ("image",))
    single = {k: out.pop(k) for k in [k for k in out if k.endswith("_image") or k.startswith("image/")]}
    for index, modality in enumerate(MODE_IMAGES["multi"]):
        weight = one_hot[:, index]
        out[f"{modality}_items"] = weight
        out.update({f"{name}_{modality}_wsum": out[name] * weight for name in ("psnr", "msssim", "msssim_3d", "lpips")
                    if name in out})
        out.update({f"{modality}/{k[len('image/'):]}": v * weight for k, v in single.items() if k.startswith("image/")})
    return out


def summarise_val(means: dict, cfg) -> dict:
    """Pixel-weighted regional errors (seed "Regional Loss Tracking"; the ratio of means of sums is
    the ratio of sums), overall and per modality, and the timestep-bin health ratio."""
    if cfg.data.mode == "multi":  # per modality: the weighted sums' means over the items' weight
        for modality in MODE_IMAGES["multi"]:
            items = means.pop(f"{modality}_items")
            for key in [k for k in means if k.endswith(f"_{modality}_wsum")]:
                means[key[:-len("_wsum")]] = means.pop(key) / items if items > 0 else math.nan
    out = regional_summary(means, MODE_IMAGES[cfg.data.mode])
    out.update({f"{name}_loss": error for name, error in size_errors(means).items()})
    bins = sorted(means[f"t{name}"] for name in BIN_NAMES)
    median = (bins[BINS // 2 - 1] + bins[BINS // 2]) / 2
    out["timestep_bin_ratio"] = bins[-1] / median if median > 0 else math.inf
    return out
