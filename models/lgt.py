"""The lgt model (seed 002): a style-conditioned velocity field v(x_t, t, style) on latents, and
the ODE flow that carries a source latent x_src (t=0) to its stylised x1 (t=1).

The velocity network is MONAI's DiffusionModelUNet with class conditioning; class `num_styles`
is the "null" style of classifier-free guidance (seed 1: label dropout trains it). Integration is
Euler or midpoint with `steps` steps; with `checkpoint` each step's activations are recomputed in
the backward pass instead of kept (seed 2: use_gradient_checkpointing), so memory does not grow
with the number of steps.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as recompute

TIME_SCALE = 1000.0  # the UNet's sinusoidal timestep embedding is made for 0..1000, not 0..1


class StyleFlow(nn.Module):
    def __init__(self, num_styles: int, channels: int = 4, widths=(64, 128, 128), attention=(False, True, True),
                 res_blocks: int = 1, norm_groups: int = 32, head_channels: int = 32):
        super().__init__()
        # here, not at the top: loads torch, optuna, monai and more only where this runs
        from monai.networks.nets import DiffusionModelUNet

        self.num_styles = num_styles
        self.null_style = num_styles
        self.unet = DiffusionModelUNet(
            spatial_dims=2, in_channels=channels, out_channels=channels, channels=tuple(widths),
            attention_levels=tuple(attention), num_res_blocks=res_blocks, norm_num_groups=norm_groups,
            num_head_channels=head_channels, num_class_embeds=num_styles + 1)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """v(x_t, t, style); t is [B] in [0, 1], style [B] in 0..num_styles (num_styles = null)."""
        return self.unet(x, t * TIME_SCALE, class_labels=style)

    def guided_velocity(self, x, t, style, cfg_scale: float) -> torch.Tensor:
        """Classifier-free guidance: v_null + s * (v_style - v_null); s = 1 is the conditional v."""
        if cfg_scale == 1.0:
            return self.velocity(x, t, style)
        null = torch.full_like(style, self.null_style)
        both = self.velocity(torch.cat([x, x]), torch.cat([t, t]), torch.cat([style, null]))
        conditional, unconditional = both.chunk(2)
        return unconditional + cfg_scale * (conditional - unconditional)

    def forward(self, x_src: torch.Tensor, style: torch.Tensor, steps: int = 4, method: str = "euler",
                cfg_scale: float = 1.0, checkpoint: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Integrate dx/dt = v(x, t, style) from t=0 to t=1. Returns (x1, the mean over steps of
        mean(v^2), what the velocity L2 regulariser penalises)."""
        x, dt = x_src, 1.0 / steps
        velocity_sq = x_src.new_zeros(())
        for i in range(steps):
            t = torch.full((x.shape[0],), i * dt, device=x.device, dtype=x.dtype)
            if checkpoint and torch.is_grad_enabled():
                x, v = recompute(self._step, x, t, style, dt, method, cfg_scale, use_reentrant=False)
            else:
                x, v = self._step(x, t, style, dt, method, cfg_scale)
            velocity_sq = velocity_sq + v.float().pow(2).mean() / steps
        return x, velocity_sq

    def _step(self, x, t, style, dt: float, method: str, cfg_scale: float):
        """One step; returns (next x, the velocity the step moved along)."""
        v = self.guided_velocity(x, t, style, cfg_scale)
        if method == "midpoint":
            v = self.guided_velocity(x + 0.5 * dt * v, t + 0.5 * dt, style, cfg_scale)
        return x + dt * v, v


def divergence_hutchinson(flow: StyleFlow, x: torch.Tensor, t: torch.Tensor, style: torch.Tensor,
                          generator=None) -> torch.Tensor:
    """Per-sample Hutchinson estimate of div v = tr(dv/dx): eps^T (dv/dx) eps with Rademacher eps.

    The graph is kept (create_graph) so that a penalty on it trains the network (seed "next steps" 3:
    volume preservation, div v ~ 0)."""
    x = x.detach().requires_grad_(True)
    v = flow.velocity(x, t, style)
    eps = torch.randint(0, 2, x.shape, device=x.device, generator=generator).to(x.dtype) * 2 - 1
    (vjp,) = torch.autograd.grad(v, x, grad_outputs=eps, create_graph=True)
    return (vjp * eps).flatten(1).sum(1)
