"""The latent_conditioner model: SimulGenVAE's CNN latent conditioner (seed 000, "Architecture
Analysis").

A grayscale image (256x256 by default; the seed feeds it flattened, 65,536 values, and both forms
are accepted) goes through an initial 7x7 stride-2 conv, residual stages over `filters`, global
average pooling, and two heads: the main latent (`latent_dim_end`, 32) and the hierarchical
latent (`latent_dim * size2`), both bounded by Tanh. Spectral norm (torch's parametrization) sits
where the seed's `add_sn` puts it: every Linear and each residual block's second conv.

`LatentConditionerTraining` holds what training adds around the network: the fixed feature MLPs
of the perceptual loss and the adaptive loss weighter, so that one `nn.Module` (and one Accelerate
checkpoint) carries all of it. The network itself stays a pure module.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def add_sn(module: nn.Module) -> nn.Module:
    """The seed's `add_sn`: spectral norm on a layer's weight."""
    return spectral_norm(module)


class SqueezeExcitation(nn.Module):
    """Seed "SqueezeExcitation Attention": channel weights from a pooled MLP."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.excitation = nn.Sequential(add_sn(nn.Linear(channels, hidden)), nn.SiLU(),
                                        add_sn(nn.Linear(hidden, channels)), nn.Sigmoid())

    def forward(self, x):
        weights = self.excitation(self.squeeze(x).flatten(1))
        return x * weights[:, :, None, None]


def group_norm(channels: int) -> nn.GroupNorm:
    # the seed names GroupNorm but not its groups: 8 where the width allows
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ResidualBlock(nn.Module):
    """Conv -> GroupNorm -> SiLU -> Conv (spectral norm) -> GroupNorm -> [SE] -> + identity -> SiLU.

    `features` after a forward holds the block's two intermediate maps the seed's spectral
    regulariser is about (after the first activation, and before the residual sum); the loss reads
    them through forward hooks (losses/latent.py)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, use_attention: bool = True,
                 reduction: int = 8, drop_rate: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.gn1 = group_norm(out_channels)
        self.act1 = nn.SiLU()
        self.conv2 = add_sn(nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False))
        self.gn2 = group_norm(out_channels)
        self.attention = SqueezeExcitation(out_channels, reduction) if use_attention else nn.Identity()
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            group_norm(out_channels))
        self.dropout = nn.Dropout2d(drop_rate) if drop_rate > 0 else nn.Identity()

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.gn1(self.conv1(x)))
        out = self.attention(self.gn2(self.conv2(out)))
        return self.dropout(nn.functional.silu(out + identity))


class LatentConditioner(nn.Module):
    """Image -> (main latent [B, latent_dim_end], hierarchical latent [B, latent_dim * size2])."""

    def __init__(self, image_size: int = 256, filters=(32, 64, 128, 256), blocks_per_stage: int = 1,
                 latent_dim_end: int = 32, latent_dim: int = 8, size2: int = 4, encoder_dim: int = 256,
                 use_attention: bool = True, se_reduction: int = 8, drop_rate: float = 1e-13):
        super().__init__()
        self.image_size = image_size
        self.stem = nn.Sequential(nn.Conv2d(1, filters[0], 7, stride=2, padding=3, bias=False),
                                  group_norm(filters[0]), nn.SiLU())
        blocks, width = [], filters[0]
        for stage, out in enumerate(filters):
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1  # each later stage halves the resolution
                blocks.append(ResidualBlock(width, out, stride, use_attention, se_reduction, drop_rate))
                width = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.latent_encoder = nn.Sequential(add_sn(nn.Linear(width, encoder_dim)), nn.SiLU())
        self.latent_head = nn.Sequential(add_sn(nn.Linear(encoder_dim, latent_dim_end // 2)), nn.SiLU(),
                                         add_sn(nn.Linear(latent_dim_end // 2, latent_dim_end)), nn.Tanh())
        hier = latent_dim * size2
        self.xs_encoder = nn.Sequential(add_sn(nn.Linear(width, encoder_dim)), nn.SiLU())
        self.xs_head = nn.Sequential(add_sn(nn.Linear(encoder_dim, hier // 2)), nn.SiLU(),
                                     add_sn(nn.Linear(hier // 2, hier)), nn.Tanh())
        self._initialize_weights()

    def _initialize_weights(self):
        """Seed "Weight Initialization Strategy": He (fan_out) for convs and hidden linears,
        Xavier with gain 0.1 for the output heads (Tanh starts unsaturated)."""
        for name, m in self.named_modules():
            weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else getattr(m, "weight", None)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                if "head" in name:
                    nn.init.xavier_uniform_(weight, gain=0.1)
                else:
                    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        if x.dim() == 2:  # the seed's flattened pixels: [B, H*W] -> [B, 1, H, W]
            side = math.isqrt(x.shape[-1])
            x = x.reshape(-1, 1, side, side)
        features = self.pool(self.blocks(self.stem(x))).flatten(1)
        return self.latent_head(self.latent_encoder(features)), self.xs_head(self.xs_encoder(features))


class PerceptualFeatures(nn.Module):
    """Seed "Perceptual Loss Integration": MLPs (hidden sizes `hidden`, e.g. [16, 8]) that map a
    latent to dim // 2 features. The seed never gives them to an optimiser, so they are fixed
    random projections; here they are frozen explicitly (requires_grad False)."""

    def __init__(self, dim: int, hidden=(16, 8)):
        super().__init__()
        self.nets = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, max(1, dim // 2)))
            for h in hidden)
        self.requires_grad_(False)

    def forward(self, z):
        return [net(z) for net in self.nets]


class SoftmaxWeighter(nn.Module):
    """The seed's AdaptiveLossWeighter: weights = n * softmax(log_weights). Trained on the same
    total loss it moves all weight onto the smallest component (seed README, known bug 000)."""

    def __init__(self, n: int):
        super().__init__()
        self.log_weights = nn.Parameter(torch.zeros(n))

    def forward(self, losses: torch.Tensor):
        weights = torch.softmax(self.log_weights, dim=0) * len(losses)
        return (weights * losses).sum(), weights.detach()


class UncertaintyWeighter(nn.Module):
    """Kendall, Gal & Cipolla 2018: total = sum(exp(-s_i) * L_i + s_i) with learned s_i = log var_i,
    on top of the documented weights (the L_i come in weighted), and bounded: s_i = log(bound) *
    tanh(r_i), so each multiplier exp(-s_i) stays in [1 / bound, bound].

    Unbounded, the optimum exp(-s_i) = 1 / L_i replaces the documented weights: a term near zero
    (the consistency term, about 7e-6) would be weighted about 1e5. Bounded, a component's
    effective weight is its documented weight times a factor the data moves by at most `bound`
    either way."""

    def __init__(self, n: int, bound: float = 10.0):
        super().__init__()
        self.raw = nn.Parameter(torch.zeros(n))
        self.log_bound = math.log(bound)

    def log_vars(self) -> torch.Tensor:
        return self.log_bound * torch.tanh(self.raw)

    def forward(self, losses: torch.Tensor):
        log_vars = self.log_vars()
        precision = torch.exp(-log_vars)
        return (precision * losses + log_vars).sum(), precision.detach()


class LatentConditionerTraining(nn.Module):
    """The network plus what its losses train or hold: perceptual feature MLPs, adaptive weighter."""

    def __init__(self, net: LatentConditioner, main_dim: int, hier_dim: int, perceptual_hidden=(16, 8),
                 adaptive: str = "none", components: int = 0, adaptive_bound: float = 10.0):
        super().__init__()
        self.net = net
        self.perceptual_main = PerceptualFeatures(main_dim, perceptual_hidden)
        self.perceptual_hier = PerceptualFeatures(hier_dim, perceptual_hidden)
        if adaptive == "uncertainty":
            self.weighter = UncertaintyWeighter(components, adaptive_bound)
        else:
            self.weighter = SoftmaxWeighter(components) if adaptive == "softmax" else None

    def forward(self, x):
        return self.net(x)
