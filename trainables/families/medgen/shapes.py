"""MedGen's image geometry: the sides of a run's images (2D slices or 3D volumes) and how many
times each autoencoder kind shrinks them (seed 001 "Model Architectures": VAE, VQ-VAE, DC-AE), so
that a misfit is one line before Ray starts, not a failed first batch."""

from __future__ import annotations

import functools
import json
import os

from losstune.trainables.config import ConfigError

# seed "DC-AE": variant -> (latent channels, stages, scaling factor); each stage after the first
# halves the side, so 6 stages compress 32x (256 -> 8), 7 64x, 8 128x
DCAE_VARIANTS = {"f32c32": (32, 6, 0.3189), "f64c128": (128, 7, 0.2889), "f128c512": (512, 8, 0.25)}
# diffusers' AutoencoderDC layout (its defaults are the f32c32 model's), one more stage per variant
DCAE_WIDTHS = (128, 256, 512, 512, 1024, 1024, 2048, 2048)


def image_sides(data, spatial_dims: int) -> tuple[str, str, tuple[int, ...]]:
    """A MedGen run's images: (the field that sizes them, its value and the sides it gives, as an
    error names them ("30: 30x30"), the sides): data.image_size square in 2D, data.volume in 3D."""
    if spatial_dims == 2:
        name, value, sides = "data.image_size", data.image_size, (data.image_size,) * 2
    else:
        name, value, sides = "data.volume", list(data.volume), tuple(data.volume)
    return name, f"{value}: {'x'.join(map(str, sides))}", sides


def shrink_misfit(sides, model, whose: str = "") -> str:
    """Why the autoencoder `model` (a medgen_compression ModelConfig) cannot take images of these
    sides ("" where it can)."""
    factor = compression_factor(model)
    if not factor or all(side % factor == 0 for side in sides):
        return ""
    return (f"do not fit the {model.kind}{whose}, which shrinks every side {factor}x: each must be a multiple of "
            f"{factor}")


def compression_factor(model) -> int | None:
    """How many times the autoencoder shrinks each side: 2x per level after the first (MONAI's
    AutoencoderKL), per level (VQVAE, downsampling at every level), per DC-AE stage after the
    first; None for a pretrained DC-AE whose config.json does not say."""
    if model.kind == "vae":
        return 2 ** (len(model.vae.channels) - 1)
    if model.kind == "vqvae":
        return 2 ** len(model.vqvae.channels)
    stages = pretrained_stages(model.dcae.pretrained) if model.dcae.pretrained else DCAE_VARIANTS[model.dcae.variant][1]
    return 2 ** (stages - 1) if stages else None


@functools.lru_cache(maxsize=8)
def pretrained_stages(folder: str) -> int:
    """The stages of a saved AutoencoderDC (0 where its config.json does not list them); read once
    per folder, since every config built (each trial's, each sampled point's) asks."""
    path = os.path.join(folder, "config.json")
    try:
        with open(path) as f:
            return len(json.load(f).get("encoder_block_out_channels") or ())
    except (OSError, ValueError, AttributeError) as err:  # unreadable, not JSON, not a JSON object
        raise ConfigError("model.dcae.pretrained", f"{path}: not an AutoencoderDC config ({err})") from None
