"""The blocks of medgen's transformer denoisers (models/medgen_transformers.py): the timestep's
features, attention with QK normalisation, DiT's adaLN-Zero block, UViT's plain pre-LN block and
the adaLN-modulated output layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from monai.networks.blocks import MLPBlock
from monai.networks.nets.diffusion_model_unet import get_timestep_embedding
from torch import nn


MLP_RATIO = 4


def timestep_features(timesteps: torch.Tensor, width: int) -> torch.Tensor:
    return get_timestep_embedding(timesteps, width)


class Attention(nn.Module):
    """Multi-head self-attention (torch's scaled_dot_product_attention), QK-normalised if asked."""

    def __init__(self, width: int, heads: int, qk_norm: bool, qkv_bias: bool = True):
        super().__init__()
        self.heads = heads
        self.qkv, self.out = nn.Linear(width, 3 * width, bias=qkv_bias), nn.Linear(width, width)
        self.q_norm = nn.LayerNorm(width // heads) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(width // heads) if qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        attended = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v)
        return self.out(rearrange(attended, "b h n d -> b n (h d)"))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """Attention and MLP, each on a LayerNorm shifted and scaled by the conditioning, each residual
    gated by it (adaLN-Zero: the gates start at 0, so the block starts as the identity)."""

    def __init__(self, width: int, heads: int, qk_norm: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(width, heads, qk_norm)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = MLPBlock(width, MLP_RATIO * width, act="GELU")
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=1)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class ViTBlock(nn.Module):
    """UViT's block: pre-LN attention and MLP, plain residuals (seed: "Standard Pre-LN ViT blocks",
    qkv_bias=False). Not MONAI's TransformerBlock: it always holds a cross-attention LayerNorm,
    parameters without gradients, which DDP refuses."""

    def __init__(self, width: int, heads: int, qk_norm: bool):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads, qk_norm, qkv_bias=False)
        self.mlp = MLPBlock(width, MLP_RATIO * width, act="GELU")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class OutputLayer(nn.Module):
    """DiT's final layer: an adaLN-modulated LayerNorm and a linear map to each patch's pixels, both
    starting at 0."""

    def __init__(self, width: int, values: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.linear = nn.Linear(width, values)
        for layer in (self.ada[1], self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm(x), shift, scale))
