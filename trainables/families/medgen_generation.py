"""Images from noise with a trained medgen_diffusion network (seed 001, "RFlow Timestep Convention",
`generation_num_steps`): MONAI's DiffusionInferer.sample over a scheduler of the run's strategy
set to `generation.num_steps` steps. RFlow integrates its ODE from t = 1 (noise) to t = 0 with
Euler steps, x_{t-dt} = x_t + dt * v (MONAI's RFlowScheduler.step); DDPM runs MONAI's ancestral
sampler on that many of its steps. The network is conditioned as in training (the mask
concatenated, pooled to the latent's size in latent space); latent samples are decoded by the
run's autoencoder. Samples are clamped to the data's [0, 1] range."""

from __future__ import annotations

import math

import torch

from losstune.losses.diffusion import make_noise_scheduler
from losstune.trainables.families.latent_space import LatentSpace, space_of


def sampling_scheduler(cfg, sample_shape: tuple[int, ...]):
    """A fresh scheduler of the run's strategy, set to its generation steps (the training one is
    shared and keeps its own timesteps). RFlow's steps follow the same resolution-based shift as
    its training times."""
    s = cfg.strategy
    scheduler = make_noise_scheduler(s.name, s.num_train_timesteps, cfg.model.spatial_dims, s.transform_base_size,
                                     s.timestep_transform)
    if s.name == "rflow":
        scheduler.set_timesteps(cfg.generation.num_steps, input_img_size_numel=math.prod(sample_shape[1:]))
    else:
        scheduler.set_timesteps(cfg.generation.num_steps)
    return scheduler


@torch.no_grad()
def generate(model, cfg, cond: torch.Tensor, sample_shape: tuple[int, ...], seed: int | None = None) -> torch.Tensor:
    """len(cond) samples (pixel space, [0, 1]) conditioned on the masks `cond` ([N, C, *image]; C = 0
    in seg mode); `sample_shape`: what the network denoises per sample ([channels, *size] of the
    images, or of their latents)."""
    from monai.inferers import DiffusionInferer

    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(cfg.generation.seed if seed is None else seed)
    noise = torch.randn((len(cond), *sample_shape), generator=generator).to(device)
    latent = cfg.space.name == "latent"
    cond = cond.to(device)
    condition = LatentSpace.condition(cond, noise) if latent else cond
    scheduler = sampling_scheduler(cfg, sample_shape)
    was_training = model.training
    model.eval()
    try:
        samples = DiffusionInferer(scheduler).sample(noise, model, scheduler, conditioning=condition, mode="concat",
                                                     verbose=False)
    finally:
        model.train(was_training)
    if latent:
        samples = space_of(cfg).decode(samples)
    return samples.float().clamp(0.0, 1.0)
