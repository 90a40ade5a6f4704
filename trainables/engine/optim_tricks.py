"""Optimiser-side tricks the shared loop offers every family, each off by default (OptimConfig):

- SAM / ASAM (Foret et al. 2020, arXiv 2010.01412; Kwon et al. 2021, arXiv 2102.11600): climb to
  the worst point within radius rho of the weights, take the gradient there, step from the
  original weights. Two forward-backward passes per step.
- Gradient noise (Neelakantan et al. 2015): Gaussian noise of std sigma / (1 + step)^decay added
  to every gradient after clipping, before the optimiser step (seed 001, "Gradient Noise"). It is
  added after DDP's all-reduce, so it is drawn from a generator of its own, seeded alike on every
  worker: noise that differed between workers would make their weights drift apart.
- EMA of the weights: torch's AveragedModel; validation and checkpoints use it.

PyTorch has no SAM optimiser; these two functions are the whole of it.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


@torch.no_grad()
def sam_ascent(params, rho: float, adaptive: bool) -> list:
    """Move each parameter to w + e(w) and return the e(w) (None where a parameter has no grad).

    SAM: e = rho g / ||g||. ASAM: e = rho |w|^2 g / || |w| g ||, the same step measured in units of
    each weight's own scale."""
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return [None] * len(params)
    norm = torch.linalg.vector_norm(torch.stack([
        torch.linalg.vector_norm((p.abs() * p.grad) if adaptive else p.grad) for p in with_grad]))
    scale = rho / (norm + 1e-12)
    steps = []
    for p in params:
        if p.grad is None:
            steps.append(None)
            continue
        step = (p.pow(2) * p.grad if adaptive else p.grad) * scale
        p.add_(step)
        steps.append(step)
    return steps


@torch.no_grad()
def sam_return(params, steps: list) -> None:
    """Undo `sam_ascent`: back to the weights the optimiser steps from."""
    for p, step in zip(params, steps):
        if step is not None:
            p.sub_(step)


def gradient_noise_std(sigma: float, decay: float, step: int) -> float:
    """sigma / (1 + step)^decay, `step` counted from 0 (seed 001: 0.01, 0.55)."""
    return sigma / (1.0 + step) ** decay


@torch.no_grad()
def add_gradient_noise(params, std: float, generator: torch.Generator | None = None) -> None:
    for p in params:
        if p.grad is not None:
            noise = torch.randn(p.grad.shape, generator=generator, device=p.grad.device, dtype=p.grad.dtype)
            p.grad.add_(noise, alpha=std)


class GradientNoise:
    """Gradient noise from its own generator, seeded with the run's seed on every worker, so all
    workers add the same noise to their (all-reduced, identical) gradients. Checkpointed through
    Accelerate's `register_for_checkpointing` (state_dict / load_state_dict)."""

    def __init__(self, sigma: float, decay: float, seed: int, device: torch.device):
        self.sigma, self.decay = sigma, decay
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def add(self, params, step: int) -> None:
        """Noise of std sigma / (1 + step)^decay, `step` counted from 0."""
        add_gradient_noise(params, gradient_noise_std(self.sigma, self.decay, step), self.generator)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def make_ema(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of `model`'s weights (and buffers), never trained itself."""
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema


class RngSnapshot:
    """The CPU and current-device RNG states, so that a second pass (SAM) draws the same
    timesteps, noise and dropout as the first and measures the same loss at other weights."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)
