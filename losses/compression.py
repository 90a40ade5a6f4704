"""The compression models' loss terms (seed 001 "Loss Functions / VAE Training", DC-AE seg mode),
each unweighted: the weights come from the config.

Adversarial terms are MONAI's PatchAdversarialLoss with the least-squares criterion, as in MONAI's
autoencoder recipes; the segmentation terms are torch's BCE, MONAI's DiceLoss and MONAI's
HausdorffDTLoss (a distance-transform boundary loss)."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F


def l1(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample mean absolute error, [B]."""
    return (reconstruction.float() - target.float()).abs().flatten(1).mean(1)


def kl(z_mu: torch.Tensor, z_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) summed over the latent's elements, per sample [B] (MONAI's
    AutoencoderKL recipes; the seed's weight 1e-6 is for this sum)."""
    mu, sigma = z_mu.float(), z_sigma.float()
    return 0.5 * (mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2)) - 1).flatten(1).sum(1)


@functools.lru_cache(maxsize=1)
def _adversarial():
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.losses import PatchAdversarialLoss

    return PatchAdversarialLoss(criterion="least_squares")


def logits(discriminator, images: torch.Tensor) -> torch.Tensor:
    """The PatchDiscriminator's last output: one logit per patch."""
    return discriminator(images.contiguous())[-1]


def generator_adversarial(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's term: its reconstructions judged real, mean((D(fake) - 1)^2)."""
    return _adversarial()(fake_logits, target_is_real=True, for_discriminator=False)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's own loss, MONAI's recipe: the mean of (D(real) - 1)^2 and D(fake)^2."""
    adversarial = _adversarial()
    return 0.5 * (adversarial(fake_logits, target_is_real=False, for_discriminator=True)
                  + adversarial(real_logits, target_is_real=True, for_discriminator=True))


@functools.lru_cache(maxsize=1)
def _segmentation_losses():
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.losses import DiceLoss, HausdorffDTLoss

    # batch=True: one Dice over the batch's voxels (MONAI's batch-pooled Dice; segmentation_terms)
    return (DiceLoss(sigmoid=True, batch=True),
            HausdorffDTLoss(sigmoid=True, include_background=True, reduction="none"))


def segmentation_terms(mask_logits: torch.Tensor, mask: torch.Tensor) -> dict:
    """seed "DC-AE seg mode": BCE + Dice + Boundary of the decoded mask's logits, each per sample [B].
    The Dice is pooled over the batch, each sample given the batch's value. Per sample, a tumour-free
    slice scores a Dice loss near 1 unless every logit is far below 0 (0.95 at -10 over 4 pixels,
    0.9998 over 32x32): on real anatomy, most of whose slices are tumour-free, the term pushed every
    logit down. Pooled, a tumour-free slice adds only its false positives to the batch's sums.
    Measured (benchmarks/seg_compression_dice.py, 12 epochs at 64 px, lr 1e-3, boundary weight 0):
    val/dice 0.93 pooled against 0.51 per sample.

    The boundary term measures distances in units of the image's longest side: MONAI's
    HausdorffDTLoss weighs each pixel's error by squared distances in pixels, so its scale grew with
    the square of the resolution (34 at the start of a 64 px run against BCE's 0.7, 97% of the
    loss), a weight of 1 meant 16 times more at 256 px than at 64, and on real anatomy the default
    never learned: val/dice 0 at every one of 12 epochs at the seed's lr (constant), 0.82 once
    scaled (benchmarks/history.md)."""
    dice, boundary = _segmentation_losses()
    logits_, target = mask_logits.float(), mask.float()
    side = max(target.shape[2:])
    return {"bce": F.binary_cross_entropy_with_logits(logits_, target, reduction="none").flatten(1).mean(1),
            "dice": dice(logits_, target).reshape(()).expand(len(logits_)),
            "boundary": boundary(logits_, target).flatten(1).mean(1) / side**2}


def overlap_counts(mask_logits: torch.Tensor, mask: torch.Tensor) -> dict:
    """Per sample [B], the voxel counts that Dice and IoU are pooled from over a validation set
    (pooled_overlap): predicted and true (tp), predicted plus true (sizes), and whether the target
    holds no tumour (empty_target). Per-slice Dice, with an empty slice against an empty prediction
    scored 1, rewarded predicting nothing: 0.884 on MRI with 84 of 95 slices tumour-free."""
    predicted = (mask_logits > 0).flatten(1).float()
    target = (mask > 0.5).flatten(1).float()
    return {"overlap_tp": (predicted * target).sum(1), "overlap_sizes": predicted.sum(1) + target.sum(1),
            "empty_target": (target.sum(1) == 0).float()}


def pooled_overlap(tp: float, sizes: float) -> dict:
    """Dice 2 TP / (|P| + |T|) and IoU TP / (|P| + |T| - TP) over every voxel of a set, from the
    sums (or the means, the same ratio) of overlap_counts: a predictor of nothing scores 0 wherever
    the set holds tumour, false positives on tumour-free slices count against it, and only a set
    with no tumour and no prediction scores 1."""
    if sizes <= 0:
        return {"dice": 1.0, "iou": 1.0}
    return {"dice": 2 * tp / sizes, "iou": tp / (sizes - tp) if sizes > tp else 1.0}


def codebook_stats(code_shares: torch.Tensor) -> dict:
    """seed "VQ-VAE Codebook Metrics" from each code's share of the latent vectors [K]:
    utilization (share of codes used), dead codes, entropy (nats), perplexity (exp entropy) and
    perplexity as a percentage of the codebook."""
    shares = code_shares.double() / code_shares.sum().clamp(min=1e-12)
    used = shares > 0
    entropy = -(shares[used] * shares[used].log()).sum().item()
    size = len(shares)
    return {"codebook_utilization": used.double().mean().item(), "codebook_dead_codes": float((~used).sum()),
            "codebook_entropy": entropy, "codebook_perplexity": math.exp(entropy),
            "codebook_perplexity_pct": 100 * math.exp(entropy) / size}


def code_shares(codes: torch.Tensor, size: int) -> torch.Tensor:
    """Per sample, each code's share of its latent vectors: [B, size]."""
    flat = codes.flatten(1)
    counts = torch.zeros(flat.shape[0], size, device=codes.device).scatter_add_(
        1, flat.long(), torch.ones_like(flat, dtype=torch.float32))
    return counts / flat.shape[1]


def mixed(images: torch.Tensor, mixup_prob: float, cutmix_prob: float) -> torch.Tensor:
    """seed "Batch-level Augmentations (VAE only)": with `mixup_prob` MONAI's MixUp (each image
    blended with another by a Beta-drawn lambda), else with `cutmix_prob` MONAI's CutMix (a box
    pasted from another); the reconstruction target is the mixed batch itself."""
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.transforms import CutMix, MixUp

    draw = torch.rand(()).item()
    if draw < mixup_prob:
        transform = MixUp(batch_size=len(images))
    elif draw < mixup_prob + cutmix_prob:
        transform = CutMix(batch_size=len(images))
    else:
        return images
    # MONAI's transforms draw from a RandomState of their own: seeded from torch's, they follow the run's seed
    transform.set_random_state(seed=int(torch.randint(0, 2**31, ())))
    return transform(images)
