"""The hdr_patch model: a patch network predicting log-domain residuals (seed 004).

Input patches are linear HDR radiance, channels in this order (seed 6.3's scaler takes 7):
  0-2  warped RGB of the frame to repair (holes are 0)
  3    hole mask (1 where the warp left no data)
  4-   extra radiance channels (default 3: a low-resolution guide render of the frame)

The pipeline is seed section 1.1, step by step: clamp >= 0 and log(x + eps); per-patch min-max
normalisation with the range `denom` clamped at 1e-6; a conv encoder-decoder (MONAI's UNet)
predicts a raw residual r; tanh bounds it and a cap scales it to delta_log (Mode A: the fixed
cap alpha * abs_max; Mode B: log_delta_scale * denom, proportional to the patch's log range;
or, seed 5.1 / 6.2 / 6.3, a learnable scale or an input-conditioned scale in place of Mode A's
cap); an optional safety clamp (seed 5.3); exp(log_img + delta_log) - eps back to linear.
The learnable scale is the seed's `residual_output_scale` (6.2), one number or, as 5.1 allows,
one per RGB channel.

The seed's proposed "dynamic cap" `denom.mean(dim=[1,2,3])` is a no-op on a [B,1,1,1] tensor,
so it equals Mode B, which exists already; it is deliberately not offered (seed 2.2).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def log_normalize(rgb: torch.Tensor, eps: float):
    """Seed 1.1 steps 1-2: log image, its per-patch minimum and log dynamic range `denom`."""
    log_img = torch.log(torch.clamp(rgb, min=0.0) + eps)
    flat = log_img.flatten(1)
    min_log = flat.amin(dim=1).view(-1, 1, 1, 1)
    max_log = flat.amax(dim=1).view(-1, 1, 1, 1)
    denom = torch.clamp(max_log - min_log, min=1e-6)
    return log_img, min_log, denom


def bounded_delta(bounded: torch.Tensor, cap, residual_scale: float, clamp_value: float | None):
    """Seed 1.1 step 4: delta_log = tanh(r) * cap * scale, then the optional safety clamp (5.3)."""
    delta = bounded * cap * residual_scale
    if clamp_value is not None:
        delta = torch.clamp(delta, min=-clamp_value, max=clamp_value)
    return delta


class AdaptiveResidualScaler(nn.Module):
    """Seed 6.3: a per-patch cap predicted from the network input, softplus, clamped to [2, 10].

    The seed's code, at PyTorch's default initialisation, starts every patch's softplus near 0.6,
    below the clamp's 2, where the clamp passes no gradient: the predictor never learns and the cap
    stays 2 for the whole run (the seed's own warning: "may require careful initialization"). Its
    last layer starts with zero weights and the bias that puts every patch at the middle of the
    range (6, the seed's learnable-scale init, 6.2), so the clamp is inactive and the cap learns."""

    def __init__(self, in_channels: int, low: float = 2.0, high: float = 10.0):
        super().__init__()
        self.low, self.high = low, high
        last = nn.Conv2d(16, 1, 1)
        nn.init.zeros_(last.weight)
        nn.init.constant_(last.bias, math.log(math.expm1((low + high) / 2)))  # softplus^-1 of the middle
        self.predictor = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, 16, 1), nn.ReLU(), last, nn.Softplus()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.predictor(x), min=self.low, max=self.high)


class HDRPatchModel(nn.Module):
    """Network plus the log-domain residual pipeline. forward returns a dict of tensors:
    `pred` (linear RGB), `delta_log`, `log_img`, `tanh` (the bounded residual) and `cap`, the
    bound tanh was scaled by (a scalar, one per channel [1, 3, 1, 1] or one per patch [B, 1, 1, 1]),
    which the seed asks to monitor where it is learnt."""

    def __init__(
        self,
        *,
        in_channels: int = 7,
        channels: tuple[int, ...] = (16, 32, 64),
        num_res_units: int = 1,
        mode: str = "A",
        abs_max: float = 16.0,
        alpha: float = 1.2,
        log_delta_scale: float = 0.9,
        eps: float = 1e-6,
        residual_scale: float = 1.0,
        clamp_value: float | None = None,
        output_norm: bool = False,
        learnable_scale: bool = False,
        scale_init: float = 6.0,
        scale_per_channel: bool = False,
        adaptive_scaler: bool = False,
        scaler_range: tuple[float, float] = (2.0, 10.0),
    ):
        super().__init__()
        from monai.networks.nets import UNet  # heavy import: only the family that needs it pays

        if mode not in ("A", "B"):
            raise ValueError(f"mode must be 'A' or 'B', got {mode!r}")
        if (learnable_scale or adaptive_scaler) and mode != "A":
            raise ValueError("a learnable or adaptive scale replaces Mode A's fixed cap; it needs mode 'A'")
        if learnable_scale and adaptive_scaler:
            raise ValueError("choose one of learnable_scale and adaptive_scaler")
        if scale_per_channel and not learnable_scale:
            raise ValueError("scale_per_channel is a form of the learnable scale; it needs learnable_scale")
        self.mode, self.abs_max, self.alpha = mode, abs_max, alpha
        self.log_delta_scale, self.eps = log_delta_scale, eps
        self.residual_scale, self.clamp_value = residual_scale, clamp_value
        self.net = UNet(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=3,
            channels=channels,
            strides=(2,) * (len(channels) - 1),
            num_res_units=num_res_units,
        )
        # Seed 5.2 writes LayerNorm([3, H, W]) but counts "6 parameters (scale + bias per
        # channel)": that is GroupNorm with one group, which also works for any patch size.
        self.output_norm = nn.GroupNorm(1, 3) if output_norm else None
        scale_shape = (1, 3, 1, 1) if scale_per_channel else (1,)
        self.output_scale = nn.Parameter(torch.full(scale_shape, scale_init)) if learnable_scale else None
        self.scaler = AdaptiveResidualScaler(in_channels, *scaler_range) if adaptive_scaler else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        log_img, min_log, denom = log_normalize(x[:, :3], self.eps)
        extra = torch.log(torch.clamp(x[:, 4:], min=0.0) + self.eps)
        net_in = torch.cat([(log_img - min_log) / denom, x[:, 3:4], (extra - min_log) / denom], dim=1)
        raw = self.net(net_in)
        if self.output_norm is not None:
            raw = self.output_norm(raw)
        bounded = torch.tanh(raw)
        cap = self._cap(net_in, denom)
        delta_log = bounded_delta(bounded, cap, self.residual_scale, self.clamp_value)
        ln_hat = log_img + delta_log
        return {"pred": torch.exp(ln_hat) - self.eps, "delta_log": delta_log, "log_img": log_img, "tanh": bounded,
                "cap": cap}

    def _cap(self, net_in: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
        if self.output_scale is not None:
            return self.output_scale
        if self.scaler is not None:
            return self.scaler(net_in)
        if self.mode == "A":
            return denom.new_tensor(self.alpha * self.abs_max)
        return self.log_delta_scale * denom
