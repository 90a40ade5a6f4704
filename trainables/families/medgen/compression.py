"""medgen_compression family (seed 001, MedGen): the compression models latent diffusion trains in
(seed "Training Pipeline Order"): a VAE (MONAI AutoencoderKL), a VQ-VAE (MONAI VQVAE) or a DC-AE
(diffusers' AutoencoderDC), 2D slices or 3D volumes (DC-AE: 2D), with a MONAI PatchDiscriminator.

Loss (seed "Loss Functions / VAE Training"), each term unweighted, weights from loss.weights:
L1 + perceptual + KL (VAE) or VQ commitment (VQ-VAE) + adversarial from `gan.start_epoch` on;
seg_compression mode (DC-AE): BCE + Dice + Boundary instead of L1 + perceptual. The discriminator
minimises its own term, `discriminator`, with its own optimiser (generator 1e-4, discriminator
5e-4, both with the warmup + cosine schedule and clipped): two optimiser groups of the shared
loop, no special case in it. DC-AE with a GAN (the seed's phase 3) freezes the encoder.

Objective: `val/l1` (min; the seed's `Loss/L1_val`), with PSNR, MS-SSIM and (eval.lpips_weights)
LPIPS reported; in seg_compression mode `val/dice` (max; `Validation/Dice`), with IoU and the L1 of the decoded mask's
probabilities. Reported as well: the KL, the codebook's
use, and both networks' rates and gradient norms reported under the seed's tags (TAGS).
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import torch

from losstune.losses.compression import discriminator_loss, generator_adversarial, kl, l1, logits, mixed, segmentation_terms
from losstune.losses.tumour_size import BINS as SIZE_BINS
from losstune.trainables.families.medgen import compression_config as settings
from losstune.trainables.families.medgen import compression_val as validation
from losstune.trainables.config import ConfigError
from losstune.trainables.family_api import Objective, OptimizerGroup, Parts, adamw
from losstune.trainables.families.medgen.autoencoders import make_model
from losstune.trainables.families.medgen.compression_modes import (MODALITIES, READS, gan_on, images_of, pooled,
                                                                   segmenting, uses_perceptual)
from losstune.trainables.families.medgen.items import check_subjects, make_items, subject_split
from losstune.trainables.families.medgen.steps import TORCHVISION_NEEDED, check_lpips, perceptual_term

OBJECTIVE = Objective("val/l1", "min")  # written to TensorBoard as Loss/L1_val (TAGS)
SEG_OBJECTIVE = Objective("val/dice", "max", min_effect="0.01")  # seg_compression (Validation/Dice); one Dice point
CODEBOOK = ("utilization", "dead_codes", "entropy", "perplexity", "perplexity_pct")
REGIONAL = ("tumor_loss", "background_loss", "tumor_bg_ratio")
# the loop's metric names -> the seed's tag names (seed "TensorBoard Metrics (Verified)", "Metrics
# Summary by Trainer Type"); gradient norms under the GAN's names (g / d)
TAGS = {
    "train/loss": "Loss/Generator_train", "train/l1": "Loss/L1_train", "train/perceptual": "Loss/Perceptual_train",
    "train/kl": "Loss/KL_train", "train/vq": "Loss/VQ_train", "train/adversarial": "Loss/Adversarial",
    "train/discriminator": "Loss/Discriminator", "train/bce": "Loss/BCE_train", "train/dice": "Loss/Dice_train",
    "train/boundary": "Loss/Boundary_train",
    "val/l1": "Loss/L1_val", "val/kl": "Loss/KL_val", "val/vq": "Loss/VQ_val", "val/bce": "Loss/BCE_val",
    "val/dice_loss": "Loss/Dice_val", "val/boundary": "Loss/Boundary_val",
    "val/psnr": "Validation/PSNR", "val/msssim": "Validation/MS-SSIM", "val/msssim_3d": "Validation/MS-SSIM-3D",
    "val/dice": "Validation/Dice", "val/iou": "Validation/IoU",
    **{f"val/psnr_{m}": f"Validation/PSNR_{m}" for m in MODALITIES},
    **{f"val/msssim_{m}": f"Validation/MS-SSIM_{m}" for m in MODALITIES},
    **{f"val/msssim_3d_{m}": f"Validation/MS-SSIM-3D_{m}" for m in MODALITIES},
    "val/lpips": "Validation/LPIPS", **{f"val/lpips_{m}": f"Validation/LPIPS_{m}" for m in MODALITIES},
    **{f"val/{name}": f"regional/{name}" for name in REGIONAL},
    **{f"val/{size}_loss": f"regional/{size}" for size in SIZE_BINS},  # seed: per-pixel error by tumour size
    **{f"val/dice_{size}": f"Validation/Dice_{size}" for size in SIZE_BINS},  # seg compression, lesion-wise
    **{f"val/{m}_{name}": f"regional_{m}/{name}" for m in MODALITIES for name in REGIONAL},
    **{f"val/codebook_{name}": f"Codebook/{name}" for name in CODEBOOK},
    "lr": "LR/Generator", "lr/discriminator": "LR/Discriminator",
    "grad_norm": "training/grad_norm_g_avg", "grad_norm_max": "training/grad_norm_g_max",
    "grad_norm/discriminator": "training/grad_norm_d_avg", "grad_norm_max/discriminator": "training/grad_norm_d_max",
}

# the family's settings, under the names the contract reads (trainables/family_api.py)
Config, PRESETS, SMOKE = settings.Config, settings.PRESETS, settings.SMOKE
val_metrics, summarise_val = validation.val_metrics, validation.summarise_val  # reconstructions; the codebook's use


def objective_for(cfg) -> Objective:
    """Masks are ranked by their Dice, images by the L1 (the issue's and the seed's headline metrics)."""
    return SEG_OBJECTIVE if segmenting(cfg) else OBJECTIVE


# --- data ------------------------------------------------------------------------------------------

def check_data(cfg) -> int:
    """The perceptual network's weights, then every file read and checked once, before Ray starts;
    returns the number of training items (slices in 2D)."""
    if uses_perceptual(cfg):
        if not cfg.loss.perceptual_weights_path:
            raise ConfigError("loss.weights.perceptual", "> 0 needs loss.perceptual_weights_path (a local ResNet-50 "
                                                         "state dict: weights cannot be downloaded here), or set it to 0 "
                                                         "(--smoke-test and --preset small do)")
        if importlib.util.find_spec("torchvision") is None:
            raise ConfigError("loss.weights.perceptual", TORCHVISION_NEEDED)
    check_lpips(cfg, images_of(cfg))
    return check_subjects(cfg, READS[cfg.data.mode])


def build(cfg) -> Parts:
    mode = READS[cfg.data.mode]
    train_subjects, val_subjects = subject_split(cfg, mode)
    model = make_model(cfg)
    if cfg.model.pure_bf16_weights:  # seed "Precision Configuration": converted before DDP wraps it
        model = model.to(torch.bfloat16)
    return Parts(model, make_items(cfg, train_subjects, cfg.data.augment, mode, aggressive=True, pool=pooled(cfg)),
                 make_items(cfg, val_subjects, False, mode, with_spacing=True), {})


# --- loss --------------------------------------------------------------------------------------------

def term_weights(cfg) -> dict:
    """The weight of each term this config computes; the discriminator's own loss has weight 1."""
    w = cfg.loss.weights
    weights = {"bce": w.bce, "dice": w.dice, "boundary": w.boundary} if segmenting(cfg) else {"l1": w.l1}
    if uses_perceptual(cfg):
        weights["perceptual"] = w.perceptual
    if cfg.model.kind == "vae":
        weights["kl"] = w.kl
    if cfg.model.kind == "vqvae":
        weights["vq"] = w.vq
    if gan_on(cfg):
        weights.update(adversarial=w.adversarial, discriminator=1.0)
    return weights


def combine(model, weighted: dict, cfg) -> tuple:
    """The generator's loss (the seed's Loss/Generator_train): every term but the discriminator's."""
    return sum(value for name, value in weighted.items() if name != "discriminator"), {}


def optimizer_groups(model, cfg) -> list[OptimizerGroup]:
    """The autoencoder's AdamW at optim.lr minimising the generator's loss, and the
    discriminator's at gan.disc_lr minimising its own term; both scheduled and clipped."""
    generator = [p for p in model.autoencoder.parameters() if p.requires_grad]
    groups = [OptimizerGroup("generator", adamw(generator, cfg.optim))]
    if model.discriminator is not None:
        optimizer = adamw(model.discriminator.parameters(), replace(cfg.optim, lr=cfg.gan.disc_lr))
        groups.append(OptimizerGroup("discriminator", optimizer, terms=("discriminator",)))
    return groups


def on_epoch_start(model, epoch: int, cfg) -> None:
    model.epoch.fill_(epoch)  # the adversarial terms' clock


def loss_terms(model, batch, cfg):
    images = batch[0]
    inner = getattr(model, "module", model)  # the Compression module under DDP
    d = cfg.data
    if d.mixup_prob or d.cutmix_prob:
        images = mixed(images, d.mixup_prob, d.cutmix_prob)
    reconstruction, extras = model(images)
    if segmenting(cfg):
        terms = {name: value.mean() for name, value in segmentation_terms(reconstruction, images).items()}
    else:
        terms = {"l1": l1(reconstruction, images).mean()}
    if uses_perceptual(cfg):
        terms["perceptual"] = perceptual_term(cfg, reconstruction, images)
    if cfg.model.kind == "vae":
        terms["kl"] = kl(extras["z_mu"], extras["z_sigma"]).mean()
    if cfg.model.kind == "vqvae":
        terms["vq"] = extras["quantization_loss"]
    if inner.discriminator is not None and int(inner.epoch) >= cfg.gan.start_epoch:
        fake = torch.sigmoid(reconstruction) if segmenting(cfg) else reconstruction
        terms["adversarial"] = generator_adversarial(logits(inner.discriminator, fake))
        terms["discriminator"] = discriminator_loss(logits(inner.discriminator, images),
                                                    logits(inner.discriminator, fake.detach()))
        h = cfg.health
        dominated = (terms["discriminator"].detach() < h.disc_floor) & (terms["adversarial"].detach() > h.adv_ceiling)
        return terms, {"discriminator_dominated": dominated.float()}  # its epoch mean: the share of steps
    return terms, {}


def stop_reason(metrics, cfg) -> str:
    """Clearly broken runs (seed "Trainers": the compression models' failure modes), after
    health.grace_epochs: a collapsed posterior (KL near 0, reconstructions poor), a dead codebook,
    and a discriminator that has won (its loss near 0 while the generator's adversarial loss is
    near its least-squares maximum)."""
    h, epoch, kind = cfg.health, metrics["epoch"], cfg.model.kind
    if epoch > h.grace_epochs:
        if kind == "vae" and metrics["val/kl"] < h.kl_floor and metrics["val/l1"] > h.poor_l1:
            return "kl_collapse"
        if kind == "vqvae" and metrics["val/codebook_utilization"] < h.min_codebook_usage:
            return "dead_codebook"
    if h.stop_on_discriminator_domination and gan_on(cfg) and epoch > cfg.gan.start_epoch + h.grace_epochs:
        if metrics.get("health/discriminator_dominated", 0.0) >= h.domination_share:
            return "discriminator_domination"
    return ""
