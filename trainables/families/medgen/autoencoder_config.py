"""medgen_compression's autoencoder settings (seed 001 "Model Architectures" VQ-VAE to DC-AE, "DC-AE
1.5", "Precision Configuration"): VAE, VQ-VAE and DC-AE sections with the seed's documented defaults
(the networks: trainables/families/medgen/autoencoders.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from losstune.trainables.config import ConfigError, above, at_least
from losstune.trainables.families.medgen.shapes import DCAE_VARIANTS

@dataclass(frozen=True)
class VAEConfig:
    """MONAI AutoencoderKL. seed "3D VAE": latent 3, channels [32, 64, 128, 128], no attention (the
    2D config names no widths: the same, which gives the seed's "VAE 8x")."""

    latent_channels: int = 3  # seed "3D VAE": latent_channels 3
    channels: tuple[int, ...] = (32, 64, 128, 128)  # seed "3D VAE"; 4 levels = the seed's "VAE 8x"
    res_blocks: int = 2  # MONAI's default
    norm_groups: int = 32  # MONAI's default
    attention: bool = False  # seed: "No attention layers (O(n^2) too expensive for 3D)"


@dataclass(frozen=True)
class VQVAEConfig:
    """MONAI VQVAE. seed "VQ-VAE": 512 codes, embedding dim 3, commitment 0.25 (loss.weights.vq);
    the widths are MONAI's defaults, 3 levels = the seed's "VQ-VAE 8x"."""

    num_embeddings: int = 512  # seed "VQ-VAE": codebook size 512
    embedding_dim: int = 3  # seed "VQ-VAE": embedding_dim 3
    channels: tuple[int, ...] = (96, 96, 192)  # MONAI's defaults: 3 levels, the seed's "VQ-VAE 8x"
    res_layers: int = 3  # MONAI's default
    decay: float = 0.5  # the codebook's EMA decay: MONAI VQVAE's default (the seed names none)


@dataclass(frozen=True)
class DCAEConfig:
    """diffusers' AutoencoderDC (2D only). seed "DC-AE": f32c32 (default), f64c128, f128c512."""

    variant: Literal["f32c32", "f64c128", "f128c512"] = "f32c32"  # seed "DC-AE": configs/dcae/f32.yaml, the default
    width_factor: float = 1.0  # every stage's width x this (the `small` preset: 1/8)
    layers_per_block: int = 2  # per stage (diffusers' default encoder has 2-3)
    pretrained: str = ""  # a local folder saved by AutoencoderDC.save_pretrained; "" = from scratch
    # seed "DC-AE 1.5: Structured Latent Space": while training, each sample keeps only its first
    # c' latent channels, c' drawn from min_channels, min_channels + channel_step, ..., c; the seed
    # recommends it for c >= 64 (f64c128, f128c512), not for f32c32
    structured_latent: bool = False  # seed: enabled false unless asked
    min_channels: int = 16  # seed dcae.structured_latent.min_channels
    channel_step: int = 4  # seed dcae.structured_latent.channel_step

    def __post_init__(self):
        above("width_factor", self.width_factor, 0.0)
        at_least("layers_per_block", self.layers_per_block, 1)
        at_least("min_channels", self.min_channels, 1)
        at_least("channel_step", self.channel_step, 1)
        latent = self.latent_channels  # a pretrained model's own count is checked when it is read
        if self.structured_latent and not self.pretrained and self.min_channels >= latent:
            raise ConfigError("min_channels", f"{self.min_channels} leaves nothing to mask in {self.variant}'s "
                                              f"{latent} latent channels")
        if self.structured_latent and not self.pretrained and (latent - self.min_channels) % self.channel_step:
            raise ConfigError("channel_step", f"{self.channel_step} does not step from min_channels "
                                              f"{self.min_channels} to {self.variant}'s {latent} channels")
        if self.pretrained and not os.path.isfile(os.path.join(self.pretrained, "config.json")):
            raise ConfigError("pretrained", f"{self.pretrained}: no AutoencoderDC folder (config.json) there; "
                                            "weights cannot be downloaded here, give a local save_pretrained folder")

    @property
    def latent_channels(self) -> int:
        """The latent channels of the seed's variant (f32c32: 32)."""
        return DCAE_VARIANTS[self.variant][0]


@dataclass(frozen=True)
class ModelConfig:
    kind: Literal["vae", "vqvae", "dcae"] = "vae"  # seed "Trainers"
    spatial_dims: int = 2  # seed "Compression Training Config Names": vae (2D); vae_3d is the preset
    gradient_checkpointing: bool = False  # seed "3D VAE": trades compute for ~50% of the memory
    pure_bf16_weights: bool = False  # seed "Precision Configuration": pure_weights (weights in bf16)
    vae: VAEConfig = field(default_factory=VAEConfig)
    vqvae: VQVAEConfig = field(default_factory=VQVAEConfig)
    dcae: DCAEConfig = field(default_factory=DCAEConfig)

    def __post_init__(self):
        if self.spatial_dims not in (2, 3):
            raise ConfigError("spatial_dims", f"must be 2 or 3, got {self.spatial_dims}")
        if self.kind == "dcae" and self.spatial_dims == 3:
            raise ConfigError("kind", "dcae is 2D (diffusers' AutoencoderDC); use vae or vqvae for volumes")
        if any(c % self.vae.norm_groups for c in self.vae.channels):
            raise ConfigError("vae.channels", f"must all be multiples of vae.norm_groups={self.vae.norm_groups}")
