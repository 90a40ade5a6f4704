"""Errors by tumour size (seed 001, "Regional Metrics": "Measures tumor size via Feret diameter
(longest edge-to-edge distance); classifies tumors using RANO-BM clinical thresholds (tiny <10mm,
small 10-20mm, medium 20-30mm, large >30mm)"; `regional/{tiny,small,medium,large}`).

Each connected component of a sample's mask (face-connected, scipy.ndimage.label) is one tumour;
its Feret diameter is the largest distance between the outer corners of its voxels, in mm at the
item's voxel size, so a line of 10 voxels of 1 mm measures 10 mm. Per sample, the squared error
and the voxel count inside the tumours of each size bin are summed, so that a set's means turn
into pixel-weighted errors per bin (`size_errors`), as the tumour / background errors are.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

BINS = {"tiny": (0.0, 10.0), "small": (10.0, 20.0), "medium": (20.0, 30.0), "large": (30.0, math.inf)}


# seed "Diffusion Modes": seg_conditioned* generate masks conditioned on "size bins" via RANO-BM
# thresholds, 7 of them ("1 + 7 bin maps"). The seed gives the count, not the edges: here every
# RANO-BM threshold (10, 20, 30 mm) is an edge, and tiny and small are split where brain metastases
# are still measurable (3, 6 mm) and halfway (15 mm).
CONDITIONING_EDGES_MM = (3.0, 6.0, 10.0, 15.0, 20.0, 30.0)
CONDITIONING_BINS = len(CONDITIONING_EDGES_MM) + 1


def bin_counts(mask: np.ndarray, spacing) -> np.ndarray:
    """How many tumours (face-connected components of the boolean `mask`, 2D or 3D) fall in each of
    the CONDITIONING_BINS size bins by Feret diameter in mm (`spacing`: the voxel size per axis)."""
    # here, not at the top: loads scipy only where this runs
    from scipy import ndimage

    counts = np.zeros(CONDITIONING_BINS, np.float32)
    labels, count = ndimage.label(mask)
    for label in range(1, count + 1):
        diameter = feret_diameter(labels == label, spacing)
        counts[int(np.searchsorted(CONDITIONING_EDGES_MM, diameter, side="right"))] += 1
    return counts


def size_bin(diameter_mm: float) -> str:
    """RANO-BM's bin of a diameter: [0, 10) tiny, [10, 20) small, [20, 30) medium, 30 and up large."""
    return next(name for name, (low, high) in BINS.items() if low <= diameter_mm < high)


def feret_diameter(mask: np.ndarray, spacing) -> float:
    """The largest edge-to-edge extent of a 2D or 3D component (a boolean array), in mm: the
    largest distance between the corners of its surface voxels (the convex hull's, where it has
    one)."""
    # here, not at the top: loads scipy only where this runs
    from scipy import ndimage
    from scipy.spatial import ConvexHull, QhullError

    surface = mask & ~ndimage.binary_erosion(mask)
    centres = np.argwhere(surface).astype(np.float64)
    offsets = np.array(list(itertools.product((-0.5, 0.5), repeat=mask.ndim)))
    corners = np.unique((centres[:, None, :] + offsets[None]).reshape(-1, mask.ndim), axis=0) * np.asarray(spacing)
    try:
        corners = corners[ConvexHull(corners).vertices]
    except (QhullError, ValueError):  # flat or too few points: every corner stays a candidate
        pass
    gaps = corners[:, None, :] - corners[None, :, :]
    return float(np.sqrt((gaps ** 2).sum(-1)).max())


def size_sums(squared_error: torch.Tensor, seg: torch.Tensor, spacing: torch.Tensor) -> dict:
    """Per sample [B]: `<bin>_sq_sum` (squared error summed over the channels' voxels inside the
    bin's tumours) and `<bin>_count` (those voxels), for each RANO-BM bin. `spacing` [B, dims]."""
    # here, not at the top: loads scipy only where this runs
    from scipy import ndimage

    out = {f"{name}_{kind}": torch.zeros(len(seg)) for name in BINS for kind in ("sq_sum", "count")}
    for k in range(len(seg)):
        mask = seg[k, 0].detach().cpu().numpy() > 0.5
        labels, count = ndimage.label(mask)
        error = squared_error[k].detach().cpu().float()
        for label in range(1, count + 1):
            component = labels == label
            name = size_bin(feret_diameter(component, spacing[k].tolist()))
            inside = torch.from_numpy(component)
            out[f"{name}_sq_sum"][k] += float(error[:, inside].sum())
            out[f"{name}_count"][k] += float(inside.sum()) * error.shape[0]
    return out


def size_errors(means: dict) -> dict:
    """Pixel-weighted squared error per bin from the means of `size_sums` over a set (NaN for a bin
    without tumours)."""
    return {name: means[f"{name}_sq_sum"] / means[f"{name}_count"] if means[f"{name}_count"] > 0 else math.nan
            for name in BINS}


def lesion_dice_sums(mask_logits: torch.Tensor, mask: torch.Tensor, spacing: torch.Tensor) -> dict:
    """Per sample [B], for each RANO-BM bin: the summed lesion-wise Dice of the true tumours of that
    size (`dice_<bin>_sum`) and their number (`dice_<bin>_lesions`). A true tumour's Dice is taken
    against the predicted components that touch it (BraTS's lesion-wise Dice, 1-voxel contact),
    so a small tumour counts as much as a large one, which the pooled Dice lets the large ones
    drown; a predicted component touching no true tumour falls in no size bin (the pooled Dice
    counts it)."""
    # here, not at the top: loads scipy only where this runs
    from scipy import ndimage

    out = {f"dice_{name}_{kind}": torch.zeros(len(mask)) for name in BINS for kind in ("sum", "lesions")}
    for k in range(len(mask)):
        truth = mask[k, 0].detach().cpu().numpy() > 0.5
        predicted = mask_logits[k, 0].detach().cpu().float().numpy() > 0
        true_labels, true_count = ndimage.label(truth)
        predicted_labels, _ = ndimage.label(predicted)
        for label in range(1, true_count + 1):
            lesion = true_labels == label
            touching = set(np.unique(predicted_labels[ndimage.binary_dilation(lesion)])) - {0}
            found = np.isin(predicted_labels, list(touching))
            dice = 2 * (lesion & found).sum() / (lesion.sum() + found.sum())
            name = size_bin(feret_diameter(lesion, spacing[k].tolist()))
            out[f"dice_{name}_sum"][k] += float(dice)
            out[f"dice_{name}_lesions"][k] += 1.0
    return out


def lesion_dice(means: dict) -> dict:
    """Mean lesion-wise Dice per bin from the means of `lesion_dice_sums` (NaN: no tumour that size)."""
    return {f"dice_{name}": means[f"dice_{name}_sum"] / means[f"dice_{name}_lesions"]
            if means[f"dice_{name}_lesions"] > 0 else math.nan for name in BINS}
