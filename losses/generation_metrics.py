"""Distances between generated and real images, on features of a frozen network (seed 001,
"Generation Quality Metrics"): KID (unbiased MMD with the cubic polynomial kernel, mean and std
over random subsets; torchmetrics' poly_mmd, the KID paper's estimator), CMMD (MMD with a
Gaussian RBF kernel on CLIP embeddings; written here as google-research/cmmd defines it, which no
installed library provides) and FID (checked against MONAI's FIDMetric, computed in the samples'
space: `fid`). Lower is better for all three. Features
come from models/feature_extractors.py."""

from __future__ import annotations

import math

import torch

CMMD_SIGMA = 10.0  # google-research/cmmd distance.py: _SIGMA
CMMD_SCALE = 1000.0  # ... _SCALE: the distance reported x 1000


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """(mean, std) over `subsets` random subsets of the unbiased squared MMD with the kernel
    k(x, y) = (x . y / d + 1)^3; each subset draws min(subset_size, n) features from each set
    without replacement, from `seed`: every trial is measured on the same draws."""
    # here, not at the top: loads matplotlib, scipy, transformers and more only where this runs
    from torchmetrics.image.kid import poly_mmd

    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError(f"KID needs at least 2 features per set, got {len(real)} real and {len(fake)} generated")
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        r = real[torch.randperm(len(real), generator=generator)[:size]]
        f = fake[torch.randperm(len(fake), generator=generator)[:size]]
        values.append(float(poly_mmd(r.double(), f.double())))
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, std


def cmmd(real: torch.Tensor, fake: torch.Tensor) -> float:
    """1000 x the squared MMD with k(x, y) = exp(-|x - y|^2 / (2 sigma^2)), sigma 10, of the two
    sets of (L2-normalised) CLIP embeddings; the means include the diagonal, as CMMD's does."""
    x, y = real.double(), fake.double()
    gamma = 1.0 / (2 * CMMD_SIGMA ** 2)

    def mean_kernel(a, b):
        return torch.exp(-gamma * torch.cdist(a, b).pow(2)).mean()

    return float(CMMD_SCALE * (mean_kernel(x, x) + mean_kernel(y, y) - 2 * mean_kernel(x, y)))


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """The Frechet distance of the two feature sets' Gaussians,
    |mu_r - mu_f|^2 + tr(S_r) + tr(S_f) - 2 tr((S_r S_f)^(1/2)), with the last trace taken in the
    samples' space: S_r S_f has the nonzero eigenvalues of K K^T, K = X_r X_f^T / sqrt((n_r - 1)(n_f - 1))
    (X the centred features), so tr((S_r S_f)^(1/2)) is K's nuclear norm: an n_r x n_f SVD in place
    of the square root of a 2048 x 2048 matrix (MONAI's FIDMetric took 17 s of a smoke run's 21 s
    of generation metrics here; the two agree: tests/losses/test_generation_metrics.py). Below 2048
    samples the covariances are singular and the estimate is biased upwards, as every FID is."""
    r, f = real.double(), fake.double()
    xr, xf = r - r.mean(0), f - f.mean(0)
    cross = torch.linalg.matrix_norm(xr @ xf.T, ord="nuc") / math.sqrt((len(r) - 1) * (len(f) - 1))
    traces = xr.pow(2).sum() / (len(r) - 1) + xf.pow(2).sum() / (len(f) - 1)
    return float((r.mean(0) - f.mean(0)).pow(2).sum() + traces - 2 * cross)
