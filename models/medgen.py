"""The medgen diffusion network (seed 001, "Model Architectures: UNet" and "Diffusion Modes").

MONAI's DiffusionModelUNet, 2D or 3D. Its input is the noisy image(s) with the conditioning
channels concatenated (bravo: [bravo_t, seg]; dual: [t1_pre_t, t1_gd_t, seg]), as MONAI's
DiffusionInferer builds it in its "concat" mode; its output is the strategy's prediction for the
image channels only (DDPM: the noise, RFlow: the velocity).
"""

from __future__ import annotations

import torch
from torch import nn


class DiffusionNet(nn.Module):
    """prediction = unet(x, timesteps) with x = [x_t, conditioning] (in_channels: the images and
    their conditioning, data.medgen.mode_channels; out_channels: the images), called by MONAI's
    DiffusionInferer; `epoch` is training state (a buffer, so it is checkpointed) that
    epoch-dependent tricks such as the timestep curriculum read. The defaults are the seed's UNet
    and MONAI's head size (8; the seed names none)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, widths=(128, 256, 256),
                 attention=(False, True, True), res_blocks: int = 1, norm_groups: int = 32, head_channels: int = 8,
                 flash_attention: bool = True, omega_classes: int = 0, embedded: int = 0):
        super().__init__()
        # here, not at the top: loads torch, optuna, monai and more only where this runs
        from monai.networks.nets import DiffusionModelUNet

        # flash_attention: MONAI's use_flash_attention, torch's scaled_dot_product_attention: the same
        # attention without materialising its [batch, heads, positions, positions] matrix.
        # omega_classes: ScoreAug's transform index, embedded and added to the time embedding
        # (MONAI's class embedding; seed "ScoreAugModelWrapper injects omega conditioning")
        self.unet = DiffusionModelUNet(
            spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, channels=tuple(widths),
            attention_levels=tuple(attention), num_res_blocks=res_blocks, norm_num_groups=norm_groups,
            num_head_channels=head_channels, use_flash_attention=flash_attention,
            num_class_embeds=omega_classes or None)
        self.omega_classes = omega_classes
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long))
        # the last `embedded` input channels are constant maps of a vector (seg_conditioned: the tumour-size
        # bins, the seed's "Size bins (FiLM)"; multi: the modality, one-hot, the seed's mode embedding),
        # embedded and added to the time embedding; MONAI's UNet embeds class labels only, so a hook on
        # its time embedding adds them
        self.embedded, self._vector = embedded, None
        if embedded:
            width = self.unet.time_embed[-1].out_features
            self.vector_embedding = nn.Sequential(nn.Linear(embedded, width), nn.SiLU(), nn.Linear(width, width))
            self.unet.time_embed.register_forward_hook(self._add_vector)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor | None = None,
                omega: torch.Tensor | None = None) -> torch.Tensor:
        """The inferer's call: x already holds the conditioning channels; no cross-attention context.
        `omega`: each sample's ScoreAug transform index; none given is the identity (0)."""
        if self.omega_classes and omega is None:
            omega = torch.zeros(len(x), dtype=torch.long, device=x.device)
        if self.embedded:
            x, self._vector = split_embedded(x, self.embedded)
        return self.unet(x, timesteps, context, class_labels=omega)

    def _add_vector(self, module, inputs, embedding):
        return embedding + self.vector_embedding(self._vector.to(embedding.dtype))

    def feature_blocks(self) -> dict:
        """The blocks feature perturbation may add noise after."""
        unet = self.unet
        return {"encoder": list(unet.down_blocks), "mid": [unet.middle_block], "decoder": list(unet.up_blocks)}


def split_embedded(x: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(the input without its last `count` channels, those channels' per-sample means [B, count]): the
    vector the data gives as constant maps."""
    return x[:, :-count], x[:, -count:].flatten(2).mean(2)


def add_feature_noise(network: nn.Module, layers: tuple[str, ...], std: float) -> list:
    """Forward hooks that add N(0, std^2) to the output of the network's encoder blocks, middle
    block(s) and/or decoder blocks while training (seed "Feature Perturbation"; like continuous
    dropout). Returns the hook handles."""
    blocks = network.feature_blocks()

    def perturb(module, inputs, output):
        if not module.training:
            return output
        if isinstance(output, torch.Tensor):
            return output + std * torch.randn_like(output)
        # MONAI's down blocks return (hidden states, skip connections): perturb the hidden states
        return (output[0] + std * torch.randn_like(output[0]), *output[1:])

    return [block.register_forward_hook(perturb) for layer in layers for block in blocks[layer]]
