"""MedGen's compression models (seed 001 "Trainers", "Model Architectures"): MONAI's AutoencoderKL
(VAE) and VQVAE, diffusers' AutoencoderDC (DC-AE), each with an optional MONAI PatchDiscriminator.

`Compression` holds the autoencoder and the discriminator in one module, so that the loop's
checkpoints, EMA and devices cover both; the optimiser groups split them again. Its forward
returns the reconstruction and what the regulariser needs (`z_mu`, `z_sigma` for the KL; the
quantisation loss, and in eval the code indices, for VQ). `encode` and `decode` are what latent
diffusion uses: the VAE's posterior mean, the VQ-VAE's quantised embedding, the DC-AE's latent.
"""

from __future__ import annotations

import torch
from torch import nn

KINDS = ("vae", "vqvae", "dcae")


def channel_counts(latent: int, least: int, step: int) -> tuple[int, ...]:
    """DC-AE 1.5's options for how many leading latent channels a sample keeps: least, least + step,
    ..., latent (seed: "[16, 20, 24, ..., c]")."""
    return tuple(range(least, latent + 1, step))


def channel_mask(like: torch.Tensor, counts: tuple[int, ...]) -> torch.Tensor:
    """[B, C, 1, ...]: 1 on each sample's first c' channels, c' drawn from `counts`, 0 after
    (DC-AE 1.5's structured latent: early channels must carry the structure on their own)."""
    drawn = torch.tensor(counts, device=like.device)[torch.randint(len(counts), (len(like),), device=like.device)]
    keep = torch.arange(like.shape[1], device=like.device)[None] < drawn[:, None]
    return keep.to(like.dtype).view(*keep.shape, *([1] * (like.ndim - 2)))


class Compression(nn.Module):
    def __init__(self, kind: str, autoencoder: nn.Module, discriminator: nn.Module | None = None,
                 structured: tuple[int, ...] = ()):
        """`structured` (DC-AE only): the channel counts of DC-AE 1.5's masking; while training, each
        sample's latent keeps a count drawn from them before it is decoded; () = off."""
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if structured and kind != "dcae":
            raise ValueError("structured latent channels are DC-AE 1.5's")
        self.kind = kind
        self.autoencoder = autoencoder
        self.discriminator = discriminator
        self.structured = tuple(structured)
        # epochs done: the adversarial terms start at gan.start_epoch (kept in the checkpoint)
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        ae = self.autoencoder
        if self.kind == "vae":
            reconstruction, z_mu, z_sigma = ae(x)
            return reconstruction, {"z_mu": z_mu, "z_sigma": z_sigma}
        if self.kind == "vqvae":
            encoded = ae.encode(x)
            quantized, quantization_loss = ae.quantize(encoded)
            extras = {"quantization_loss": quantization_loss}
            if not self.training:  # which code each latent vector took: the codebook's usage
                extras["codes"] = ae.quantizer.quantize(encoded)
            return ae.decode(quantized), extras
        if self.structured and self.training:
            latent = ae.encode(x).latent
            return ae.decode(latent * channel_mask(latent, self.structured)).sample, {}
        return ae(x).sample, {}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        ae = self.autoencoder
        if self.kind == "vae":
            return ae.encode(x)[0]  # the posterior mean: a deterministic latent
        if self.kind == "vqvae":
            return ae.encode_stage_2_inputs(x)
        return ae.encode(x).latent

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        ae = self.autoencoder
        if self.kind == "vae":
            return ae.decode(z)
        if self.kind == "vqvae":
            return ae.decode_stage_2_outputs(z)  # snapped to the codebook first, as MONAI's LDM does
        return ae.decode(z).sample


def vae(spatial_dims: int, channels_in: int, latent: int, channels: tuple, res_blocks: int, norm_groups: int,
        attention: bool, checkpointing: bool) -> nn.Module:
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.networks.nets import AutoencoderKL

    return AutoencoderKL(spatial_dims=spatial_dims, in_channels=channels_in, out_channels=channels_in,
                         channels=tuple(channels), latent_channels=latent, num_res_blocks=res_blocks,
                         norm_num_groups=norm_groups, attention_levels=(attention,) * len(channels),
                         with_encoder_nonlocal_attn=attention, with_decoder_nonlocal_attn=attention,
                         use_checkpoint=checkpointing)


def vqvae(spatial_dims: int, channels_in: int, codes: int, embedding_dim: int, channels: tuple, res_layers: int,
          decay: float, checkpointing: bool) -> nn.Module:
    """MONAI's VQVAE, one 2x downsampling per level (MONAI's own parameters), at commitment cost 1:
    the commitment weight is the family's loss weight `vq`, so the term stays unweighted."""
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.networks.nets import VQVAE

    levels = len(channels)
    return VQVAE(spatial_dims=spatial_dims, in_channels=channels_in, out_channels=channels_in,
                 channels=tuple(channels), num_res_channels=tuple(channels), num_res_layers=res_layers,
                 downsample_parameters=((2, 4, 1, 1),) * levels, upsample_parameters=((2, 4, 1, 1, 0),) * levels,
                 num_embeddings=codes, embedding_dim=embedding_dim, commitment_cost=1.0, decay=decay,
                 use_checkpointing=checkpointing)


def dcae(channels_in: int, latent: int, widths: tuple, layers_per_block: int, scaling_factor: float,
         checkpointing: bool) -> nn.Module:
    """diffusers' AutoencoderDC in its own layout (residual blocks in the first three stages,
    EfficientViT blocks with multi-scale linear attention after, pixel (un)shuffle between)."""
    # here, not at the top: loads torch, diffusers only where this runs
    from diffusers import AutoencoderDC

    stages = len(widths)
    vit = tuple(["ResBlock"] * min(3, stages) + ["EfficientViTBlock"] * max(0, stages - 3))
    model = AutoencoderDC(in_channels=channels_in, latent_channels=latent, attention_head_dim=min(32, min(widths[3:] or widths)),
                          encoder_block_types=vit, decoder_block_types=vit,
                          encoder_block_out_channels=tuple(widths), decoder_block_out_channels=tuple(widths),
                          encoder_layers_per_block=(layers_per_block,) * stages,
                          decoder_layers_per_block=(layers_per_block,) * stages,
                          encoder_qkv_multiscales=((),) * 3 + ((5,),) * (stages - 3),
                          decoder_qkv_multiscales=((),) * 3 + ((5,),) * (stages - 3),
                          scaling_factor=scaling_factor)
    if checkpointing:
        model.enable_gradient_checkpointing()
    return model


def pretrained_dcae(folder: str, channels_in: int, checkpointing: bool) -> nn.Module:
    """An AutoencoderDC from a local save_pretrained folder (never downloaded). ImageNet models
    take 3 channels: with another count the first and last convolutions are new (diffusers'
    ignore_mismatched_sizes) and everything else keeps its pretrained weights."""
    # here, not at the top: loads torch, diffusers only where this runs
    from diffusers import AutoencoderDC

    model = AutoencoderDC.from_pretrained(folder, local_files_only=True, in_channels=channels_in,
                                          ignore_mismatched_sizes=True, low_cpu_mem_usage=False)
    if checkpointing:
        model.enable_gradient_checkpointing()
    return model


def patch_discriminator(spatial_dims: int, channels_in: int, channels: int, layers: int) -> nn.Module:
    """MONAI's PatchDiscriminator as MONAI's autoencoder recipes build it."""
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.networks.nets import PatchDiscriminator

    return PatchDiscriminator(spatial_dims=spatial_dims, in_channels=channels_in, channels=channels,
                              num_layers_d=layers)
