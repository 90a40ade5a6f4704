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


def size_bin(diameter_mm: float) -> str:
    """RANO-BM's bin of a diameter: [0, 10) tiny, [10, 20) small, [20, 30) medium, 30 and up large."""
    return next(name for name, (low, high) in BINS.items() if low <= diameter_mm < high)


def feret_diameter(mask: np.ndarray, spacing) -> float:
    """The largest edge-to-edge extent of a 2D or 3D component (a boolean array), in mm: the
    largest distance between the corners of its surface voxels (the convex hull's, where it has
    one)."""
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
