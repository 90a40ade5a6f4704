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
from losstune.trainables.families.medgen.representations import moved_condition, space_of
from losstune.losses.generation_metrics import cmmd, fid, kid
from losstune.models.feature_extractors import load_clip, load_resnet50
from losstune.trainables.families.medgen.items import make_items, subject_split
import time
import torch.distributed as dist


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
    images, or of their encoding in the run's space)."""
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.inferers import DiffusionInferer

    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(cfg.generation.seed if seed is None else seed)
    noise = torch.randn((len(cond), *sample_shape), generator=generator).to(device)
    space = space_of(cfg)
    cond = cond.to(device)
    condition = moved_condition(cfg, space, cond, noise)
    scheduler = sampling_scheduler(cfg, sample_shape)
    was_training = model.training
    model.eval()
    try:
        samples = DiffusionInferer(scheduler).sample(noise, model, scheduler, conditioning=condition, mode="concat",
                                                     verbose=False)
    finally:
        model.train(was_training)
    samples = space.decode(samples)
    return samples.float().clamp(0.0, 1.0)


# --- judging the samples (seed "Generation Quality Metrics") ------------------------------------------

def model_metrics(model, cfg, extras: dict, epoch: int) -> dict:
    """At a validation with generation.metrics on: `samples` images generated conditioned on the
    held-out subjects' masks, their KID (mean, std) against the training images and against the
    validation images, CMMD where a CLIP model is given, at the last epoch their FID against the
    validation images, the seconds it took, and how many validations in a row KID_train fell
    while KID_val rose; every `extended_every` epochs the same of `extended_samples` samples
    (`extended_kid_mean_val`, ...). The reference images' features are computed once per run (kept
    in `extras`). Under DDP each worker generates its share of the batches and all of them see the
    whole set's features: the numbers do not depend on the number of workers."""
    g = cfg.generation
    if not g.metrics:
        return {}
    started = time.perf_counter()
    reference = extras.get("generation") or extras.setdefault("generation", references(cfg, model, g.samples))
    out, produced = judged(model, cfg, reference)
    if epoch == cfg.train.epochs:
        # seed: FID "only computed at test time"; here of the last epoch's samples against the
        # held-out images (below 2048 samples its covariance is singular: a biased estimate)
        out["fid_val"] = fid(reference["features"]["resnet"]["val"], produced["resnet"])
    out["kid_overfit_evals"] = overfit_count(reference, out["kid_mean_train"], out["kid_mean_val"])
    if g.extended_every and epoch % g.extended_every == 0:
        wide = extras.get("generation_extended") or extras.setdefault(
            "generation_extended", references(cfg, model, g.extended_samples, reference["extractors"]))
        out |= {f"extended_{name}": value for name, value in judged(model, cfg, wide)[0].items()}
    out["generation_s"] = time.perf_counter() - started
    return out


def judged(model, cfg, reference: dict) -> tuple[dict, dict]:
    """KID (ResNet features) and CMMD (CLIP) of samples conditioned on the reference's masks,
    against its training and validation features; and the samples' features."""
    g = cfg.generation
    produced = generated_features(model, cfg, reference)
    out = {}
    for extractor, features in produced.items():
        for split in ("train", "val"):
            known = reference["features"][extractor][split]
            if extractor == "resnet":
                mean, std = kid(known, features, g.kid_subsets, g.kid_subset_size, seed=g.seed)
                out |= {f"kid_mean_{split}": mean, f"kid_std_{split}": std}
            else:
                out[f"cmmd_{split}"] = cmmd(known, features)
    return out, produced


def overfit_count(reference: dict, kid_train: float, kid_val: float) -> float:
    """Validations in a row at which KID_train fell while KID_val rose (seed: the overfitting signal)."""
    last = reference.get("last_kid")
    diverging = last is not None and kid_train < last[0] and kid_val > last[1]
    reference["overfit_evals"] = reference.get("overfit_evals", 0) + 1 if diverging else 0
    reference["last_kid"] = (kid_train, kid_val)
    return float(reference["overfit_evals"])


@torch.no_grad()
def references(cfg, model, count: int, extractors: dict | None = None) -> dict:
    """What the generation evaluations of the run compare with: the extractors (loaded here, or
    those given), the features of up to `count` training and validation images (unaugmented), and
    the validation masks to condition on (cycled to `count`)."""
    g = cfg.generation
    device = next(model.parameters()).device
    train_subjects, val_subjects = subject_split(cfg, cfg.data.mode)
    images = {split: make_items(cfg, subjects, False, cfg.data.mode)
              for split, subjects in (("train", train_subjects), ("val", val_subjects))}
    if extractors is None:
        extractors = {"resnet": load_resnet50(g.resnet_weights).to(device)}
        if g.clip_dir:
            extractors["clip"] = load_clip(g.clip_dir).to(device)
    features = {name: {split: batched(extractor, stacked(items, 0, count)).cpu() for split, items in images.items()}
                for name, extractor in extractors.items()}
    val = images["val"]
    masks = torch.stack([val[k % len(val)][1] for k in range(count)])
    first = val[0][0][None]
    shape = tuple(space_of(cfg).encode(first).shape[1:])
    return {"extractors": extractors, "features": features, "masks": masks, "sample_shape": shape}


def stacked(items, field: int, count: int) -> torch.Tensor:
    """`count` items spread evenly over the set (its subjects and slices), or all of them."""
    picked = torch.linspace(0, len(items) - 1, steps=min(count, len(items))).round().long().tolist()
    return torch.stack([items[k][field] for k in picked])


def batched(extractor, images: torch.Tensor, size: int = 16) -> torch.Tensor:
    """The extractor's features of `size` images at a time (of one volume, D slices, at a time)."""
    device = next(extractor.buffers()).device
    size = size if images.ndim == 4 else 1
    return torch.cat([extractor(images[i:i + size].to(device)) for i in range(0, len(images), size)])


def generated_features(model, cfg, reference: dict, batch: int = 16) -> dict:
    """Each extractor's features of the evaluation's samples, generated in batches. Under
    torch.distributed each worker generates its share, and the workers exchange their features:
    every worker ends with the features of all the batches, in order, as one process would."""
    starts = range(0, len(reference["masks"]), batch)
    rank, world = worker_place()
    every = exchanged(share(model, cfg, reference, rank, world, batch), world)
    return {name: torch.cat([every[i][name] for i in starts]) for name in reference["extractors"]}


def share(model, cfg, reference: dict, rank: int, world: int, batch: int) -> dict:
    """{first index: features} of every world-th batch from the rank-th, each batch's noise from its
    own seed (generation.seed + its first index), so a batch is the same whoever generates it."""
    masks, mine = reference["masks"], {}
    for i in range(0, len(masks), batch)[rank::world]:
        samples = generate(model, cfg, masks[i:i + batch], reference["sample_shape"], seed=cfg.generation.seed + i)
        mine[i] = {name: batched(extractor, samples).cpu() for name, extractor in reference["extractors"].items()}
    return mine


def worker_place() -> tuple[int, int]:
    """(rank, world size) of this process in torch.distributed's group; (0, 1) outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def exchanged(mine: dict, world: int) -> dict:
    """Every worker's {batch start: features}, merged (all_gather_object: the features are small)."""
    if world == 1:
        return mine

    everyone = [None] * world
    dist.all_gather_object(everyone, mine)
    return {start: features for theirs in everyone for start, features in theirs.items()}
