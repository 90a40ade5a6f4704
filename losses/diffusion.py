"""Diffusion strategies and the seed's clean regularisers (seed 001, "Strategies" and "Clean
Regularization Techniques").

Time is handled as t in [0, 1] with the seed's convention: t=0 clean, t=1 pure noise. The network
and MONAI's schedulers see `timesteps = t * num_train_timesteps` (integers for DDPM).

- DDPM (MONAI DDPMScheduler): x_t = sqrt(abar) x0 + sqrt(1 - abar) noise, target = noise,
  timesteps uniform over the integers 0..T-1.
- RFlow (MONAI RFlowScheduler, continuous, logit-normal, resolution-based timestep transform):
  x_t = (1 - t) x0 + t noise, target v = x0 - noise (it points from noise to data, so an Euler step
  towards t=0 adds dt * v).
"""

from __future__ import annotations

import torch

def make_noise_scheduler(strategy: str, num_train_timesteps: int, spatial_dims: int, base_size: int,
                   timestep_transform: bool = True):
    """MONAI's scheduler for a strategy. RFlow's timestep transform shifts t towards noise for
    images larger than `base_size` per side (and towards clean for smaller ones)."""
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.networks.schedulers import DDPMScheduler, RFlowScheduler

    if strategy == "ddpm":
        return DDPMScheduler(num_train_timesteps=num_train_timesteps)
    return RFlowScheduler(num_train_timesteps=num_train_timesteps, use_discrete_timesteps=False,
                          sample_method="logit-normal", use_timestep_transform=timestep_transform,
                          base_img_size_numel=base_size ** spatial_dims, spatial_dim=spatial_dims)


def sample_t(strategy: str, scheduler, x0: torch.Tensor) -> torch.Tensor:
    """The strategy's training times t in [0, 1], one per sample: DDPM an integer step k drawn
    uniformly from 0..T-1, as the time (k + 0.5) / T at the middle of its step, so that
    `model_timesteps` gives k back exactly (k / T times T truncated 251 to 250 and never drew
    it); RFlow logit-normal (biased to the middle) through MONAI's sampler."""
    steps = scheduler.num_train_timesteps
    if strategy == "ddpm":
        return (torch.randint(0, steps, (len(x0),), device=x0.device).float() + 0.5) / steps
    return scheduler.sample_timesteps(x0).float().to(x0.device) / steps


def curriculum_range(epoch: int, warmup_epochs: int, start: tuple[float, float], end: tuple[float, float]):
    """The (min t, max t) allowed at `epoch`: linear from `start` to `end` over `warmup_epochs`,
    easy (little noise) first (seed "Curriculum Timestep Scheduling")."""
    progress = min(1.0, epoch / warmup_epochs) if warmup_epochs > 0 else 1.0
    return tuple(s + progress * (e - s) for s, e in zip(start, end))


def squeeze_into(t: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Map t from [0, 1] into [low, high], keeping the strategy's distribution shape."""
    return low + (high - low) * t


def jitter(t: torch.Tensor, std: float) -> torch.Tensor:
    """t + N(0, std^2), clamped to [0, 1] (seed "Timestep Jitter": in normalised time)."""
    return (t + std * torch.randn_like(t)).clamp(0.0, 1.0)


def model_timesteps(strategy: str, t: torch.Tensor, num_train_timesteps: int) -> torch.Tensor:
    """What the network and the scheduler take: DDPM the integer step whose interval
    [k / T, (k + 1) / T) holds t (t = 1 is the last step), RFlow t * T."""
    if strategy == "ddpm":
        return torch.floor(t * num_train_timesteps).long().clamp(0, num_train_timesteps - 1)
    return t * num_train_timesteps


def augment_noise(noise: torch.Tensor, std: float) -> torch.Tensor:
    """noise + N(0, std^2), rescaled to the original noise's std (seed "Noise Augmentation")."""
    perturbed = noise + std * torch.randn_like(noise)
    return perturbed / perturbed.std() * noise.std()


def target(strategy: str, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise if strategy == "ddpm" else x0 - noise


def _per_sample(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return value.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def x0_estimate(strategy: str, scheduler, x_t: torch.Tensor, prediction: torch.Tensor,
                timesteps: torch.Tensor) -> torch.Tensor:
    """The one-step estimate of the clean image from x_t and the prediction."""
    if strategy == "ddpm":
        abar = _per_sample(scheduler.alphas_cumprod.to(x_t.device)[timesteps], x_t)
        return (x_t - (1 - abar).sqrt() * prediction) / abar.sqrt()
    t = _per_sample(timesteps / scheduler.num_train_timesteps, x_t)
    return x_t + t * prediction


def snr(strategy: str, scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio of x_t per sample: DDPM abar / (1 - abar); RFlow ((1 - t) / t)^2, the
    squared ratio of the signal's and the noise's coefficients in x_t = (1 - t) x0 + t noise.
    (MedGen's code uses (1 - t) / t, this ratio's square root.)"""
    if strategy == "ddpm":
        abar = scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
        return abar / (1 - abar)
    t = (timesteps / scheduler.num_train_timesteps).clamp(1e-6, 1.0)
    return ((1 - t) / t) ** 2


def min_snr_weights(snr_values: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma loss weights min(SNR, gamma) / SNR (Hang et al. 2023, arXiv 2303.09556): the
    nearly clean timesteps, whose SNR is huge, stop dominating the gradient. Written as
    min(1, gamma / SNR), its value for every SNR up to gamma, so pure noise (SNR = 0, RFlow's t = 1,
    which timestep jitter reaches) weighs 1, the limit, not 0 / 0."""
    return (gamma / snr_values).clamp(max=1.0)


def per_sample_mse(prediction: torch.Tensor, goal: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per sample, in float32 also under bf16 autocast; with `keep` ([B, C, 1, ...],
    0 or 1 per channel: DC-AE 1.5's augmented diffusion) the mean over each sample's kept channels."""
    squared = (prediction.float() - goal.float()).pow(2)
    if keep is None:
        return squared.flatten(1).mean(1)
    kept = keep.float().expand_as(squared)
    return (squared * kept).flatten(1).sum(1) / kept.flatten(1).sum(1)
