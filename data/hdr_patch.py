"""hdr_patch data: a deterministic synthetic HDR patch generator and a reader for `.npz` files.

A patch file holds `input` [N, C, H, W] (C >= 4, channel layout in models/hdr_patch.py) and
`target` [N, 3, H, W], both linear radiance, float, finite, >= 0. H and W must suit the model's
UNet (trainables/hdr_patch.check_data).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from losstune.data import DataError, read_npz


def synthetic_patches(num: int, size: int = 32, seed: int = 0, guide_factor: int = 4):
    """`num` patches of `size`: (input [num, 7, size, size], target [num, 3, size, size]), float32.

    Radiance spans 1e-4 .. 1e4 over the set: a smooth log-radiance field per patch, a dark region,
    specular highlights, a colour tint and texture. The input is the target warped with a shift of
    up to 2 pixels and a small exposure error, with disocclusion holes (zeros, flagged in the mask),
    plus a 1/guide_factor resolution guide render of the target.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    inputs = np.empty((num, 7, size, size), np.float32)
    targets = np.empty((num, 3, size, size), np.float32)
    for i in range(num):
        target = _scene(rng, yy, xx)
        inputs[i] = np.concatenate([*_warp_with_holes(rng, target), _guide(rng, target, guide_factor)])
        targets[i] = target
    return inputs, targets


def _scene(rng, yy, xx):
    centre = rng.uniform(-2.5, 2.5)  # log10 radiance of the patch
    contrast = rng.uniform(0.5, 3.0)  # decades spanned by the smooth field
    field = sum(
        rng.normal() * np.cos(2 * np.pi * (rng.uniform(0.3, 2.0) * (np.cos(a) * xx + np.sin(a) * yy)) + rng.uniform(0, 6.3))
        for a in rng.uniform(0, np.pi, 3)
    )
    log10 = centre + contrast * field / (np.abs(field).max() + 1e-6) / 2
    if rng.random() < 0.5:  # a dark region, two to three decades down
        cy, cx, r = rng.uniform(0, 1, 2).tolist() + [rng.uniform(0.15, 0.4)]
        log10 = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r**2, log10 - rng.uniform(2, 3), log10)
    for _ in range(rng.integers(0, 3)):  # specular highlights up to 1e4
        cy, cx, s = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.02, 0.06)
        peak = rng.uniform(2.5, 4.0)
        log10 = np.maximum(log10, peak - ((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s**2) * 0.5)
    radiance = 10.0 ** np.clip(log10, -4.0, 4.0)
    tint = rng.uniform(0.7, 1.0, size=(3, 1, 1))
    texture = 1.0 + 0.15 * rng.standard_normal((3,) + yy.shape)
    return np.clip(radiance[None] * tint * np.clip(texture, 0.5, 1.5), 1e-4, 1e4).astype(np.float32)


def _warp_with_holes(rng, target):
    dy, dx = rng.integers(-2, 3, size=2)
    warped = np.roll(target, (int(dy), int(dx)), axis=(1, 2)) * rng.uniform(0.9, 1.1)
    size = target.shape[-1]
    mask = np.zeros((1, size, size), np.float32)
    for _ in range(rng.integers(0, 3)):
        h, w = rng.integers(2, max(3, size // 3), size=2)
        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
        mask[:, y : y + h, x : x + w] = 1.0
    return warped * (1.0 - mask), mask


def _guide(rng, target, factor):
    c, h, w = target.shape
    low = target.reshape(c, h // factor, factor, w // factor, factor).mean(axis=(2, 4))
    low = low * np.exp(0.05 * rng.standard_normal(low.shape))
    return np.repeat(np.repeat(low, factor, axis=1), factor, axis=2)


def load_patches(path: str | Path):
    """Read and check a `.npz` patch file; every failure is a DataError naming the file."""
    arrays = read_npz(path)
    for key in ("input", "target"):
        if key not in arrays:
            raise DataError(f"{path}: missing array '{key}' (has {sorted(arrays)})")
    inputs, targets = arrays["input"], arrays["target"]
    if inputs.ndim != 4 or inputs.shape[1] < 4:
        raise DataError(f"{path}: 'input' must be [N, C>=4, H, W], got {list(inputs.shape)}")
    if targets.ndim != 4 or targets.shape[1] != 3:
        raise DataError(f"{path}: 'target' must be [N, 3, H, W], got {list(targets.shape)}")
    if inputs.shape[0] != targets.shape[0] or inputs.shape[2:] != targets.shape[2:]:
        raise DataError(f"{path}: 'input' {list(inputs.shape)} and 'target' {list(targets.shape)} differ in N, H or W")
    for key, array in (("input", inputs), ("target", targets)):
        if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all() or (array < 0).any():
            raise DataError(f"{path}: '{key}' must be finite non-negative floats")
    return inputs.astype(np.float32), targets.astype(np.float32)
