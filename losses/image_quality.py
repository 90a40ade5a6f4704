"""Image quality metrics shared by the medgen families (seed 001, "Validation Quality Metrics" and
"Regional Loss Tracking"), per sample, on images in [0, 1]: MONAI's PSNR and MS-SSIM, LPIPS where a
network is given (models.feature_extractors.Lpips), and squared
error inside and outside the tumour mask as sums, so that means over a validation set can be
turned into pixel-weighted regional errors (`regional_errors`)."""

from __future__ import annotations

import functools
import math

import torch

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # MONAI's defaults (Wang et al. 2003)


def per_channel(metric, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """A per-sample metric [B] of each channel on its own, [B, C] (MONAI's pool the channels)."""
    return torch.stack([metric(estimate[:, c:c + 1], reference[:, c:c + 1]) for c in range(estimate.shape[1])], 1)


def psnr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-sample PSNR (data range 1) of the squared error over all channels (MONAI's)."""
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.metrics import PSNRMetric

    return PSNRMetric(max_val=1.0, reduction="none")(estimate, reference).squeeze(1)


@functools.lru_cache(maxsize=4)
def msssim_metric(spatial_dims: int, side: int):
    """MONAI's MS-SSIM with as many of its 5 scales (and as large a kernel, up to 11) as the
    smallest side allows: each scale halves the image, and the last must exceed the kernel."""
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.metrics import MultiScaleSSIMMetric

    for scales in range(5, 0, -1):
        kernel = min(11, side // 2 ** (scales - 1) - 1)
        kernel -= 1 - kernel % 2  # odd
        if kernel >= 3:
            chosen = MSSSIM_WEIGHTS[:scales]
            return MultiScaleSSIMMetric(spatial_dims=spatial_dims, data_range=1.0, kernel_size=kernel,
                                        weights=tuple(w / sum(chosen) for w in chosen), reduction="none")
    raise ValueError(f"an image side of {side} is too small for MS-SSIM (needs >= 4)")


def msssim(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-sample MS-SSIM (data range 1), averaged over channels (MONAI's); volumetric for volumes."""
    metric = msssim_metric(estimate.ndim - 2, min(estimate.shape[2:]))
    return metric(estimate, reference).mean(1)


def slicewise_msssim(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """For volumes [B, C, H, W, D]: the 2D MS-SSIM of every axial slice (the last axis), averaged
    over the slices, per sample [B]; what a 2D model's MS-SSIM would see of the volume."""
    batch, channels, depth = estimate.shape[0], estimate.shape[1], estimate.shape[-1]

    def slices(volume):
        return volume.permute(0, 4, 1, 2, 3).reshape(batch * depth, channels, *volume.shape[2:4])

    return msssim(slices(estimate), slices(reference)).view(batch, depth).mean(1)


def regional_sums(squared_error: torch.Tensor, seg: torch.Tensor) -> dict:
    """Per sample: summed squared error and pixel count inside (seg > 0.5) and outside the mask."""
    tumour = seg.expand_as(squared_error) > 0.5
    return {"tumor_sq_sum": (squared_error * tumour).flatten(1).sum(1),
            "tumor_count": tumour.flatten(1).sum(1).float(),
            "background_sq_sum": (squared_error * ~tumour).flatten(1).sum(1),
            "background_count": (~tumour).flatten(1).sum(1).float()}


def regional_errors(means: dict) -> dict:
    """Pixel-weighted tumour and background errors and their ratio from the means of
    `regional_sums` over a set (a ratio of means of sums is the ratio of the sums)."""
    tumour = means["tumor_sq_sum"] / means["tumor_count"] if means["tumor_count"] > 0 else math.nan
    background = means["background_sq_sum"] / max(means["background_count"], 1e-12)
    return {"tumor_loss": tumour, "background_loss": background,
            "tumor_bg_ratio": tumour / background if background > 0 else math.nan}


def quality(estimates: list, reference: torch.Tensor, seg: torch.Tensor, modalities: tuple, with_msssim: bool,
            lpips=None) -> dict:
    """seed "Validation Quality Metrics" and "Regional Metrics" of one or more estimates of
    `reference` (averaged over the estimates), per sample: L1, PSNR, MS-SSIM and (with a network)
    LPIPS over all the
    channels under the plain name and each modality's (`<name>_<modality>`; the same number where
    there is one), MS-SSIM of volumes both slice by slice (`msssim`) and volumetric (`msssim_3d`),
    and the regional sums, overall and per modality (`<modality>/<sum>`)."""
    volumes = reference.ndim == 5
    metrics = {"psnr": psnr}
    if with_msssim:
        metrics["msssim"] = slicewise_msssim if volumes else msssim
        if volumes:
            metrics["msssim_3d"] = msssim
    if lpips is not None:  # 2D only (seed), refused for volumes before Ray starts
        metrics["lpips"] = lpips
    out = {"l1": torch.stack([(e - reference).abs().flatten(1).mean(1) for e in estimates]).mean(0)}
    for name, metric in metrics.items():
        channels = torch.stack([per_channel(metric, e, reference) for e in estimates]).mean(0)  # [B, C]
        out.update({f"{name}_{m}": channels[:, c] for c, m in enumerate(modalities)})
        out[name] = channels[:, 0] if len(modalities) == 1 else torch.stack(
            [metric(e, reference) for e in estimates]).mean(0)
    squared = torch.stack([(e - reference).pow(2) for e in estimates]).mean(0)
    out.update(regional_sums(squared, seg))
    for c, m in enumerate(modalities):
        out.update({f"{m}/{k}": v for k, v in regional_sums(squared[:, c:c + 1], seg).items()})
    return out


def regional_summary(means: dict, modalities: tuple) -> dict:
    """The means of `quality` with the regional sums turned into pixel-weighted errors (seed
    "Regional Loss Tracking"), overall and per modality (`<modality>_tumor_loss`, ...)."""
    out = {k: v for k, v in means.items() if not k.endswith(("_sq_sum", "_count"))}
    out.update(regional_errors(means))
    for m in modalities:
        own = {k[len(m) + 1:]: v for k, v in means.items() if k.startswith(f"{m}/")}
        out.update({f"{m}_{name}": value for name, value in regional_errors(own).items()})
    return out
