"""medgen_diffusion's network: the UNet (models/medgen.py) or a transformer (models/medgen_transformers.py),
built from the run's `model` section, and a transformer's width matched to the UNet's parameter
count for architecture comparisons."""

from __future__ import annotations

import functools

import torch

from losstune.models.medgen_transformers import DiT, HDiT, UViT, parameter_count
from dataclasses import replace
from losstune.data.medgen_modes import embedded_channels, mode_channels
from losstune.models.medgen import DiffusionNet


def denoiser(cfg, channels_in: int, channels_out: int, sides: tuple[int, ...], omega_classes: int = 0):
    """The network for inputs of `sides` (the images', or their encoding's in the run's space) and
    `channels_in` channels, the last of them, in the FiLM seg_conditioned modes and multi, the maps
    of a vector (size bins; the modality) that the network embeds instead of convolving."""
    m = cfg.model
    film = embedded_channels(cfg.data.mode)
    if m.kind == "unet":
        return DiffusionNet(m.spatial_dims, channels_in - film, channels_out, m.widths, m.attention, m.res_blocks,
                            m.norm_groups, m.head_channels, m.flash_attention, omega_classes, film)
    return transformer(m, channels_in - film, channels_out, tuple(sides), omega_classes, *m.transformer_size(),
                       embedded=film)


def transformer(m, channels_in, channels_out, sides, omega_classes, width, depth, heads, embedded=0):
    common = dict(spatial_dims=m.spatial_dims, in_channels=channels_in, out_channels=channels_out, sides=sides,
                  width=width, heads=heads, patch=m.patch, omega_classes=omega_classes, embedded=embedded)
    if m.kind == "dit":
        return DiT(depth=depth, qk_norm=m.qk_norm, **common)
    if m.kind == "hdit":
        return HDiT(level_depths=m.level_depths, qk_norm=m.qk_norm, **common)
    return UViT(depth=depth, qk_norm=m.uvit_qk_norm, **common)


@functools.lru_cache(maxsize=16)
def matched_width(cfg, kind: str) -> int:
    """The width (a multiple of 2 x heads) at which `kind`'s variant has the parameter count nearest
    the UNet of cfg.model.widths: what a comparison of architectures at equal size trains. Counted on
    PyTorch's meta device: nothing is allocated. Cached: a sweep's space asks once per trial."""
    channels_in, channels_out = mode_channels(cfg.data.mode)
    sides = (64,) * cfg.model.spatial_dims  # the count hardly depends on the sides (the position table)
    with torch.device("meta"):
        target = parameter_count(denoiser(replace(cfg, model=replace(cfg.model, kind="unet")), channels_in,
                                          channels_out, sides))
        model = replace(cfg.model, kind=kind, width=0)
        _, depth, heads = model.transformer_size()

        def count(width):
            return parameter_count(transformer(model, channels_in, channels_out, sides, 0, width, depth, heads))

        step, low, high = 2 * heads, 1, 4096 // (2 * heads)
        while low < high:  # the smallest multiple at or above the target; then the nearer of it and the one below
            middle = (low + high) // 2
            low, high = (middle + 1, high) if count(middle * step) < target else (low, middle)
    candidates = [k * step for k in (low - 1, low) if k >= 1]
    with torch.device("meta"):
        return min(candidates, key=lambda width: abs(count(width) - target))
