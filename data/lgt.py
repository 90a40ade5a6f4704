"""lgt data: latents [N, 4, H, W] with style ids [N], synthetic or from a `.npz` / `.pt` file, and
the sampling of real style references (seed 002, section 1).

A file holds `latents` (float, [N, C, H, W]) and `style_ids` (integers in 0..num_styles-1, [N]):
as arrays of an `.npz`, or as tensors of a dict saved with `torch.save` (`.pt`).

The seed's bug was `x_style_ref = x_src`: both energy terms then pull x1 back to its source and
the flow learns the identity. References here are always real latents of the *target* style,
drawn from that style's own samples (`build_style_indices_cache` once, `sample_style_batch` per step).
"""

from __future__ import annotations

import numpy as np
import torch

from losstune.data import DataError, existing_file, read_npz

KEYS = ("latents", "style_ids")


def synthetic_latents(count: int, num_styles: int = 4, size: int = 32, channels: int = 4, seed: int = 0,
                      layouts: int = 16):
    """`count` latents spread evenly over `num_styles` styles: (latents float32 [count, C, size,
    size], style_ids int64 [count]).

    Content: one of `layouts` shared smooth 2-channel fields (a few Gaussian blobs), with a little
    jitter. Style k: its own channel mixing of the content (colour-like correlations between the
    channels), a channel offset, and a texture (a grating of its own frequency and orientation),
    so styles differ in 3x3 patch statistics while the content layouts are shared.
    The style definitions depend only on num_styles, size and channels, not on `seed`: a
    validation set drawn with another seed has the same styles."""
    styles = _styles(num_styles, size, channels)
    rng = np.random.default_rng(seed)
    bank = _layouts(np.random.default_rng(1234), layouts, size)
    ids = np.arange(count) % num_styles
    rng.shuffle(ids)
    latents = np.empty((count, channels, size, size), np.float32)
    for i, style in enumerate(ids):
        content = bank[rng.integers(layouts)] + 0.05 * rng.standard_normal((2, size, size))
        mix, offset, texture = styles[style]
        latents[i] = np.einsum("cd,dhw->chw", mix, content) + offset + texture * (1 + 0.3 * content[:1])
        latents[i] += 0.02 * rng.standard_normal((channels, size, size))
    return latents, ids.astype(np.int64)


def _layouts(rng, count: int, size: int) -> np.ndarray:
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    fields = np.zeros((count, 2, size, size))
    for i in range(count):
        for channel in range(2):
            for _ in range(3):
                cy, cx, s = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.08, 0.25)
                fields[i, channel] += rng.choice([-1, 1]) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s**2))
    return fields


def _styles(num_styles: int, size: int, channels: int) -> list:
    rng = np.random.default_rng(99)
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    styles = []
    for k in range(num_styles):
        mix = rng.normal(0, 1, (channels, 2))
        offset = rng.normal(0, 0.5, (channels, 1, 1))
        angle, period = np.pi * k / num_styles, 2.5 + 1.5 * (k % 3)
        grating = np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / period)
        texture = rng.uniform(0.2, 0.6, (channels, 1, 1)) * grating[None]
        styles.append((mix, offset, texture))
    return styles


def load_latents(path: str, num_styles: int, channels: int = 4):
    """(latents float32 [N, C, H, W], style_ids int64 [N]) from a .npz or .pt file; DataError names
    the file and what is wrong with it."""
    file = existing_file(path)
    try:
        if file.suffix == ".npz":
            found = read_npz(file)
        elif file.suffix == ".pt":
            found = torch.load(file, map_location="cpu", weights_only=True)
            found = {k: as_array(v) for k, v in dict(found).items()}
        else:
            raise DataError(f"{path}: expected a .npz or .pt file")
    except DataError:
        raise
    except Exception as err:  # a corrupt or foreign file: say which
        raise DataError(f"{path}: unreadable ({type(err).__name__}: {err})") from None
    missing = [key for key in KEYS if key not in found]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)} (has: {', '.join(sorted(found)) or 'nothing'})")
    return check_latents(path, found["latents"], found["style_ids"], num_styles, channels)


def as_array(value) -> np.ndarray:
    """A loaded value as numpy; floating tensors as float32 first, since numpy has no bfloat16 (the
    dtype latents saved from a bf16 autoencoder come in)."""
    if isinstance(value, torch.Tensor):
        return (value.float() if value.is_floating_point() else value).numpy()
    return np.asarray(value)


def check_latents(path: str, latents, style_ids, num_styles: int, channels: int):
    latents, style_ids = np.asarray(latents), np.asarray(style_ids)
    if latents.ndim != 4 or latents.shape[1] != channels:
        raise DataError(f"{path}: latents must be [N, {channels}, H, W], got shape {list(latents.shape)}")
    if style_ids.shape != (len(latents),) or not np.issubdtype(style_ids.dtype, np.integer):
        raise DataError(f"{path}: style_ids must be {len(latents)} integers, got {style_ids.dtype} "
                        f"{list(style_ids.shape)}")
    bad = style_ids[(style_ids < 0) | (style_ids >= num_styles)]
    if len(bad):
        raise DataError(f"{path}: style id {int(bad[0])} out of range 0..{num_styles - 1} (data.num_styles)")
    empty = sorted(set(range(num_styles)) - set(style_ids.tolist()))
    if empty:
        raise DataError(f"{path}: style {empty[0]} has no samples (data.num_styles is {num_styles})")
    if not np.isfinite(latents).all():
        raise DataError(f"{path}: latents contain NaN or inf")
    return latents.astype(np.float32), style_ids.astype(np.int64)


def hold_out_per_style(latents, style_ids, val_fraction: float, path: str):
    """(train latents, ids, val latents, ids): the last `val_fraction` of each style's samples held
    out, so that every style has validation references."""
    train, val = [], []
    for style in np.unique(style_ids):
        index = np.flatnonzero(style_ids == style)
        cut = len(index) - max(1, int(round(val_fraction * len(index))))
        if cut < 1:
            raise DataError(f"{path}: style {int(style)} has {len(index)} sample(s), too few to hold some out")
        train.append(index[:cut])
        val.append(index[cut:])
    train, val = np.concatenate(train), np.concatenate(val)
    return latents[train], style_ids[train], latents[val], style_ids[val]


def build_style_indices_cache(style_ids: torch.Tensor) -> dict[int, torch.Tensor]:
    """{style id: indices of its samples}, built once per dataset (seed 1)."""
    return {int(style): torch.nonzero(style_ids == style).flatten() for style in torch.unique(style_ids)}


def sample_style_batch(latents: torch.Tensor, cache: dict[int, torch.Tensor], target_style_ids: torch.Tensor,
                       generator=None) -> torch.Tensor:
    """[B, C, H, W]: for each target style id, one latent drawn at random from that style's samples."""
    chosen = torch.empty(len(target_style_ids), dtype=torch.long)
    targets = target_style_ids.cpu()
    for style in torch.unique(targets).tolist():
        where = torch.nonzero(targets == style).flatten()
        pool = cache[style]
        chosen[where] = pool[torch.randint(len(pool), (len(where),), generator=generator)]
    return latents[chosen]


def other_styles(style_ids: torch.Tensor, num_styles: int, generator=None) -> torch.Tensor:
    """A target style for each sample, uniform over the styles other than its own."""
    shift = torch.randint(1, num_styles, style_ids.shape, generator=generator).to(style_ids.device)
    return (style_ids + shift) % num_styles
