"""Latent diffusion's space (seed 001 "Spaces": LatentSpace; "Training Pipeline Order"): the frozen
autoencoder of a trained medgen_compression checkpoint, and the scale its latents are multiplied by.

`representation.checkpoint` is a checkpoint folder of a medgen_compression run (what `losstune-train`
prints as its best checkpoint, or a sweep trial's): its losstune_state.json names the family and
holds the run's whole config, from which the autoencoder is built again and its weights loaded.
The scale is `representation.scale_factor` where set, else the DC-AE's documented scaling factor (seed
"DC-AE"), else 1 / std of the latents of up to 64 training items, as MONAI's latent diffusion
recipes and the seed's measure_latent_std.py do.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from losstune.trainables.config import ConfigError, apply_overrides
from losstune.trainables.families.medgen.compression_config import Config, image_sides, shrink_misfit
from losstune.trainables.engine.checkpoints import STATE_FILE
from losstune.trainables.families.medgen.autoencoders import make_model, structured_counts
from losstune.trainables.families.medgen.items import item_size, make_items, subject_split

FIELD = "representation.checkpoint"
MEASURED_ITEMS = 64
# the diffusion mode -> the compression modes whose images are the ones it generates
FITS = {"bravo": ("bravo", "multi_modality"), "bravo_seg_cond": ("bravo", "multi_modality"), "dual": ("dual",),
        **{mode: ("seg", "seg_compression")
           for mode in ("seg", "seg_conditioned", "seg_conditioned_3d", "seg_conditioned_input")}}


def compression_config(folder: str, accept_unhealthy: bool = True):
    """The medgen_compression config the checkpoint in `folder` was trained with; ConfigError
    naming the folder where it is not such a checkpoint, or (unless `accept_unhealthy`) where its
    run stopped on a health check: an autoencoder stopped as broken is no space to diffuse in."""
    path = os.path.join(folder, STATE_FILE)
    if not os.path.isfile(path):
        raise ConfigError(FIELD, f"{folder}: no {STATE_FILE}; give a checkpoint folder of a medgen_compression run")
    with open(path) as f:
        state = json.load(f)
    family = state.get("family", "")
    if family != "medgen_compression":
        raise ConfigError(FIELD, f"{folder} is a checkpoint of {family or 'an unnamed family'}, "
                                 "not of medgen_compression (latent diffusion needs its autoencoder)")
    why = (state.get("metrics") or {}).get("stop_reason")
    if why and not accept_unhealthy:
        raise ConfigError(FIELD, f"{folder} is from a run that stopped unhealthy ({why} at epoch "
                                 f"{state.get('epochs_done')}); retrain it, or --set representation.accept_unhealthy=true")
    return apply_overrides(Config(), state["config"])


def check_fits(cfg) -> None:
    """The checkpoint's autoencoder takes this run's images: the same modalities and spatial dims;
    and augmented diffusion has the structured latent it needs."""
    folder = cfg.representation.checkpoint
    compression = compression_config(folder, cfg.representation.accept_unhealthy)
    if cfg.representation.augmented_diffusion:
        augmented_counts(cfg)
    if cfg.representation.seg_checkpoint:
        check_seg_fits(cfg)
    if compression.data.mode not in FITS[cfg.data.mode]:
        raise ConfigError(FIELD, f"{folder} compresses {compression.data.mode} images; data.mode "
                                 f"{cfg.data.mode} needs a {' or '.join(FITS[cfg.data.mode])} checkpoint")
    if compression.model.spatial_dims != cfg.model.spatial_dims:
        raise ConfigError(FIELD, f"{folder} is {compression.model.spatial_dims}D; model.spatial_dims is "
                                 f"{cfg.model.spatial_dims}")
    name, described, sides = image_sides(cfg.data, cfg.model.spatial_dims)
    if why := shrink_misfit(sides, compression.model, whose=f" of {folder}"):
        raise ConfigError(name, f"{described} images {why}")


@dataclass
class LatentSpace:
    autoencoder: torch.nn.Module  # the Compression module, frozen
    scale: float
    # bravo_seg_cond: the masks' own latent space (a seg autoencoder's), in which they condition
    seg: "LatentSpace | None" = None

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.on(images).encode(images) * self.scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.on(latents).decode(latents / self.scale)

    def on(self, tensor: torch.Tensor) -> torch.nn.Module:
        return self.autoencoder.to(tensor.device)

    def condition(self, cond: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """The conditioning mask at the latent's size: each latent cell's share of tumour; in
        bravo_seg_cond the mask's latent, encoded by the seg autoencoder (seed: "conditioned on
        VQ-VAE-encoded seg masks")."""
        if self.seg is not None:
            return self.seg.encode(cond)
        return pooled(cond, latent)


def pooled(cond: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    if cond.shape[1] == 0:
        return cond.new_zeros((cond.shape[0], 0, *latent.shape[2:]))
    return F.adaptive_avg_pool2d(cond, latent.shape[2:]) if cond.ndim == 4 else \
        F.adaptive_avg_pool3d(cond, latent.shape[2:])


@functools.lru_cache(maxsize=4)
def autoencoder(folder: str) -> torch.nn.Module:
    """The checkpoint's autoencoder with its weights, in eval mode and without gradients."""
    # here, not at the top: loads safetensors only where this runs
    from safetensors.torch import load_file

    model = make_model(compression_config(folder))
    weights = os.path.join(folder, "model.safetensors")
    model.load_state_dict(load_file(weights) if os.path.isfile(weights) else
                          torch.load(os.path.join(folder, "pytorch_model.bin"), map_location="cpu"))
    return model.eval().requires_grad_(False)


@functools.lru_cache(maxsize=2)
def space_of(cfg) -> LatentSpace:
    """The run's latent space (cached per process: every step encodes with it)."""
    seg = scaled(cfg, autoencoder(cfg.representation.seg_checkpoint), field=1) if cfg.representation.seg_checkpoint else None
    model = autoencoder(cfg.representation.checkpoint)
    if cfg.representation.scale_factor:
        return LatentSpace(model, cfg.representation.scale_factor, seg)
    return LatentSpace(model, scaled(cfg, model, field=0).scale, seg)


def scaled(cfg, model, field: int) -> LatentSpace:
    """`model`'s latent space at the DC-AE's documented scale, else at 1 / std of the latents of up to
    64 training items' images (field 0) or masks (field 1)."""
    if model.kind == "dcae":
        return LatentSpace(model, float(model.autoencoder.config.scaling_factor))
    return LatentSpace(model, 1.0 / latent_std(cfg, model, field))


def latent_std(cfg, model, field: int = 0) -> float:
    subjects, _ = subject_split(cfg, cfg.data.mode)
    items = make_items(cfg, subjects, False, cfg.data.mode)
    batch = torch.stack([items[i][field] for i in range(min(MEASURED_ITEMS, len(items)))])
    return float(model.encode(batch).std())


@functools.lru_cache(maxsize=2)
def augmented_counts(cfg) -> tuple[int, ...]:
    """The channel counts augmented diffusion draws from: the checkpoint's DC-AE 1.5 masking, or
    representation.min_channels / channel_step where set. ConfigError where the checkpoint has no
    structured latent (seed: "MUST be used with augmented diffusion training (both techniques required together)")."""
    folder, representation = cfg.representation.checkpoint, cfg.representation
    compression = compression_config(folder)
    dcae = compression.model.dcae
    if compression.model.kind != "dcae" or not dcae.structured_latent:
        raise ConfigError("representation.augmented_diffusion", f"needs a structured latent: {folder} is a "
                                                                f"{compression.model.kind} trained without "
                                                                "model.dcae.structured_latent=true (DC-AE 1.5)")
    latent = int(autoencoder(folder).autoencoder.config.latent_channels)
    return structured_counts(representation.min_channels or dcae.min_channels,
                             representation.channel_step or dcae.channel_step, latent, "representation.min_channels")


def check_seg_fits(cfg) -> None:
    """bravo_seg_cond's mask autoencoder: a seg or seg_compression checkpoint of the run's spatial
    dims whose latents of a mask have the sides of the image latents they sit beside."""
    folder, field = cfg.representation.seg_checkpoint, "representation.seg_checkpoint"
    compression = compression_config(folder, cfg.representation.accept_unhealthy)
    if compression.data.mode not in ("seg", "seg_compression"):
        raise ConfigError(field, f"{folder} compresses {compression.data.mode} images; bravo_seg_cond encodes the masks "
                                 "with a seg or seg_compression checkpoint")
    if compression.model.spatial_dims != cfg.model.spatial_dims:
        raise ConfigError(field, f"{folder} is {compression.model.spatial_dims}D; model.spatial_dims is "
                                 f"{cfg.model.spatial_dims}")
    size = item_size(cfg)
    images = autoencoder(cfg.representation.checkpoint).encode(torch.zeros(1, 1, *size)).shape[2:]
    masks = autoencoder(folder).encode(torch.zeros(1, 1, *size)).shape[2:]
    if images != masks:
        raise ConfigError(field, f"{folder} makes latents of {list(masks)} from {list(size)}, the image autoencoder "
                                 f"{list(images)}: they must match to lie side by side")
