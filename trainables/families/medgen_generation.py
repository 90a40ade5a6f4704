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


# --- judging the samples (seed "Generation Quality Metrics") ------------------------------------------

def model_metrics(model, cfg, extras: dict, epoch: int) -> dict:
    """At a validation with generation.metrics on: `samples` images generated conditioned on the
    held-out subjects' masks, their KID (mean, std) against the training images and against the
    validation images, CMMD where a CLIP model is given, at the last epoch their FID against the
    validation images, the seconds it took, and how many validations in a row KID_train fell
    while KID_val rose. The reference images' features are
    computed once per run (kept in `extras`)."""
    import time

    from losstune.losses.generation_metrics import cmmd, fid, kid

    g = cfg.generation
    if not g.metrics:
        return {}
    started = time.perf_counter()
    reference = extras.get("generation") or extras.setdefault("generation", references(cfg, model))
    samples = generated(model, cfg, reference["masks"], reference["sample_shape"])
    out = {"generation_s": 0.0}
    for extractor, features in reference["features"].items():
        produced = features["of"](samples)
        for split in ("train", "val"):
            if extractor == "resnet":
                mean, std = kid(features[split], produced, g.kid_subsets, g.kid_subset_size, seed=g.seed)
                out |= {f"kid_mean_{split}": mean, f"kid_std_{split}": std}
            else:
                out[f"cmmd_{split}"] = cmmd(features[split], produced)
        if extractor == "resnet" and epoch == cfg.train.epochs:
            # seed: FID "only computed at test time"; here of the last epoch's samples against the
            # held-out images (below 2048 samples its covariance is singular: a biased estimate)
            out["fid_val"] = fid(features["val"], produced)
    out["kid_overfit_evals"] = overfit_count(reference, out["kid_mean_train"], out["kid_mean_val"])
    out["generation_s"] = time.perf_counter() - started
    return out


def overfit_count(reference: dict, kid_train: float, kid_val: float) -> float:
    """Validations in a row at which KID_train fell while KID_val rose (seed: the overfitting signal)."""
    last = reference.get("last_kid")
    diverging = last is not None and kid_train < last[0] and kid_val > last[1]
    reference["overfit_evals"] = reference.get("overfit_evals", 0) + 1 if diverging else 0
    reference["last_kid"] = (kid_train, kid_val)
    return float(reference["overfit_evals"])


@torch.no_grad()
def references(cfg, model) -> dict:
    """What every generation evaluation of the run compares with: the extractors, the features of up
    to `samples` training and validation images (unaugmented), and the validation masks to
    condition on (cycled to `samples`)."""
    from losstune.models.feature_extractors import load_clip, load_resnet50
    from losstune.trainables.families.medgen_items import make_items, subject_split

    g = cfg.generation
    device = next(model.parameters()).device
    train_subjects, val_subjects = subject_split(cfg, cfg.data.mode)
    images = {split: make_items(cfg, subjects, False, cfg.data.mode)
              for split, subjects in (("train", train_subjects), ("val", val_subjects))}
    extractors = {"resnet": load_resnet50(g.resnet_weights)}
    if g.clip_dir:
        extractors["clip"] = load_clip(g.clip_dir)
    features = {}
    for name, extractor in extractors.items():
        extractor = extractor.to(device)
        features[name] = {"of": lambda x, e=extractor: batched(e, x).cpu(),
                          **{split: batched(extractor, stacked(items, 0, g.samples)).cpu()
                             for split, items in images.items()}}
    val = images["val"]
    masks = torch.stack([val[k % len(val)][1] for k in range(g.samples)])
    first = val[0][0][None]
    shape = tuple(first.shape[1:]) if cfg.space.name != "latent" else tuple(space_of(cfg).encode(first).shape[1:])
    return {"features": features, "masks": masks, "sample_shape": shape}


def stacked(items, field: int, count: int) -> torch.Tensor:
    """`count` items spread evenly over the set (its subjects and slices), or all of them."""
    picked = torch.linspace(0, len(items) - 1, steps=min(count, len(items))).round().long().tolist()
    return torch.stack([items[k][field] for k in picked])


def batched(extractor, images: torch.Tensor, size: int = 16) -> torch.Tensor:
    device = next(extractor.buffers()).device
    return torch.cat([extractor(images[i:i + size].to(device)) for i in range(0, len(images), size)])


def generated(model, cfg, masks: torch.Tensor, sample_shape: tuple, batch: int = 16) -> torch.Tensor:
    """The evaluation's samples, in batches, each batch's noise from its own seed (generation.seed + first index)."""
    return torch.cat([generate(model, cfg, masks[i:i + batch], sample_shape, seed=cfg.generation.seed + i).cpu()
                      for i in range(0, len(masks), batch)])
