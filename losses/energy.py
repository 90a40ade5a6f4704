"""The lgt energy (seed 002): E = w_style * SWD(x1, x_style_ref) + w_content * SSM(x1, x_src).

Both distances run in fp32 with autocast disabled for their region (seed section 3.2): sorting
projections and normalising features in bf16 would lose the small differences they measure.
Randomness (projections, sampled patches and positions) comes from an optional generator so that
validation can fix it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fp32_region(device: torch.device):
    """`torch.autocast(..., enabled=False)` for the tensors' device type."""
    return torch.autocast(device_type=device.type, enabled=False)


def patches_3x3(x: torch.Tensor, contiguous: bool = True) -> torch.Tensor:
    """[B, C, H, W] -> [B, H*W, C*9]: every position's 3x3 neighbourhood (zero padding 1).

    unfold gives [B, C*9, H*W]; the transpose only changes strides, so the projection matmul
    would read it with a large stride. Seed 3.1 makes it contiguous first (`contiguous=False`
    exists for the benchmark of that claim)."""
    unfolded = F.unfold(x, kernel_size=3, padding=1).transpose(1, 2)
    return unfolded.contiguous() if contiguous else unfolded


def random_projections(dim: int, count: int, device, generator=None) -> torch.Tensor:
    """[dim, count] random unit vectors (columns), the directions SWD slices along."""
    theta = torch.randn(dim, count, device=device, generator=generator)
    return theta / theta.norm(dim=0, keepdim=True)


def sample_rows(patches: torch.Tensor, max_samples: int, stratified: bool, generator=None) -> torch.Tensor:
    """[B, N, D] -> [1, M, D] (global: M <= max_samples patches drawn from all B*N) or, stratified,
    [B, m, D] (m = max_samples // B from each element), without replacement; all when they fit."""
    b, n, d = patches.shape
    if not stratified:
        pooled = patches.reshape(1, b * n, d)
        if b * n <= max_samples:
            return pooled
        index = torch.randperm(b * n, device=patches.device, generator=generator)[:max_samples]
        return pooled[:, index]
    per = max(1, min(n, max_samples // b))
    if per == n:
        return patches
    index = torch.argsort(torch.rand(b, n, device=patches.device, generator=generator), dim=1)[:, :per]
    return torch.gather(patches, 1, index.unsqueeze(-1).expand(b, per, d))


def patch_swd(x: torch.Tensor, y: torch.Tensor, projections: int = 64, max_samples: int = 8192,
              stratified: bool = False, generator=None, contiguous: bool = True) -> torch.Tensor:
    """Sliced Wasserstein-2 (squared) between the 3x3 patch distributions of x and y.

    Each patch set is subsampled to at most `max_samples`, projected on `projections` random unit
    directions and sorted per direction; the sorted projections are compared at the same quantiles:
    the mean squared difference. Zero when both sets are the same (all patches kept), whatever
    their order.

    Global (the seed's): one distribution of all the batch's patches against one of all the
    references' patches, so only the batch's *mixture* of styles is matched. Stratified (seed 7.4,
    "preserve per-sample style diversity"): element i's patches against reference i's, averaged."""
    with fp32_region(x.device):
        px = sample_rows(patches_3x3(x.float(), contiguous), max_samples, stratified, generator)
        py = sample_rows(patches_3x3(y.float(), contiguous), max_samples, stratified, generator)
        theta = random_projections(px.shape[-1], projections, x.device, generator)
        sorted_x = torch.sort(px @ theta, dim=1).values
        sorted_y = torch.sort(py @ theta, dim=1).values
        sorted_x, sorted_y = same_quantiles(sorted_x, sorted_y)
        return (sorted_x - sorted_y).pow(2).mean()


def same_quantiles(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted [G, N, P] and [G, M, P] -> both with min(N, M) rows at the same quantiles, so that
    sets of different sizes (one output against several references) compare as distributions."""
    count = min(a.shape[1], b.shape[1])

    def at_quantiles(rows):
        if rows.shape[1] == count:
            return rows
        index = ((torch.arange(count, device=rows.device) + 0.5) * rows.shape[1] / count).long()
        return rows[:, index]

    return at_quantiles(a), at_quantiles(b)


def self_similarity(features: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
    """[B, C, H, W] -> [B, S, S]: cosine similarity between the features at S positions.

    Features are L2-normalised per position, so the matrix ignores their magnitude."""
    flat = F.normalize(features.flatten(2), dim=1)  # [B, C, N], unit length per position
    if positions is not None:
        flat = flat[:, :, positions]
    return flat.transpose(1, 2) @ flat


def ssm_distance(x: torch.Tensor, y: torch.Tensor, max_spatial_samples: int = 256, generator=None,
                 reduce: bool = True) -> torch.Tensor:
    """Mean squared difference of the self-similarity matrices of x and y.

    The full matrix is [B, H*W, H*W] (1024 x 1024 at 32x32); seed 3.3 samples
    `max_spatial_samples` positions, the same ones for both inputs, making it [B, S, S]
    (0 = all positions). reduce=False gives one value per sample."""
    with fp32_region(x.device):
        n = x.shape[-2] * x.shape[-1]
        positions = None
        if 0 < max_spatial_samples < n:
            positions = torch.randperm(n, device=x.device, generator=generator)[:max_spatial_samples]
        diff = (self_similarity(x.float(), positions) - self_similarity(y.float(), positions)).pow(2)
        per_sample = diff.flatten(1).mean(1)
        return per_sample.mean() if reduce else per_sample
