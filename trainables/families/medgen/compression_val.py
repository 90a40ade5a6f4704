"""medgen_compression's validation: each item's reconstruction judged (L1, PSNR, MS-SSIM, LPIPS,
regional and per-tumour-size errors; Dice, IoU and the seg losses for masks), the KL or VQ loss,
and the codebook's use over the whole validation set (the family: trainables/families/medgen/compression.py)."""

from __future__ import annotations

import torch

from losstune.losses.compression import (code_shares, codebook_stats, kl, l1, overlap_counts, pooled_overlap,
                                         segmentation_terms)
from losstune.losses.image_quality import quality, regional_summary
from losstune.losses.tumour_size import lesion_dice, lesion_dice_sums, size_errors, size_sums
from losstune.trainables.families.medgen.compression_modes import images_of, pooled, segmenting
from losstune.trainables.families.medgen.steps import lpips_of

@torch.no_grad()
def val_metrics(model, batch, cfg, extras):
    """Per item: the reconstruction's L1 (the objective), its quality (PSNR, MS-SSIM, regional
    errors; Dice, IoU and the three seg losses in seg_compression mode), the KL or VQ loss, and
    each code's share of the item's latent vectors (summarise_val turns them into the codebook's use)."""
    images, _, seg, spacing = batch
    if pooled(cfg):  # each modality through the one-channel autoencoder, then side by side again
        reconstruction, regulariser = model(images.flatten(0, 1)[:, None])
        reconstruction = reconstruction.float().view_as(images)
    else:
        reconstruction, regulariser = model(images)
        reconstruction = reconstruction.float()
    per_item = (lambda v: v.reshape(len(images), -1, *v.shape[1:]).mean(1)) if pooled(cfg) else (lambda v: v)
    if segmenting(cfg):
        probabilities = torch.sigmoid(reconstruction)
        out = {"l1": l1(probabilities, images), **overlap_counts(reconstruction, images),
               **lesion_dice_sums(reconstruction, images, spacing)}
        losses = segmentation_terms(reconstruction, images)
        out.update(bce=losses["bce"], dice_loss=losses["dice"], boundary=losses["boundary"])
    else:
        out = quality([reconstruction.clamp(0, 1)], images.float(), seg, images_of(cfg), cfg.eval.msssim,
                      lpips_of(cfg, images.device))
        out.update(size_sums((reconstruction.clamp(0, 1) - images.float()).pow(2), seg, spacing))
        out["l1"] = l1(reconstruction, images)  # unclamped: what the generator's L1 term sees
    if cfg.model.kind == "vae":
        out["kl"] = per_item(kl(regulariser["z_mu"], regulariser["z_sigma"]))
    if cfg.model.kind == "vqvae":
        out["vq"] = regulariser["quantization_loss"].float().expand(len(images))  # MONAI gives the batch's mean
        out["code_shares"] = per_item(code_shares(regulariser["codes"], cfg.model.vqvae.num_embeddings))
    return out


def summarise_val(means: dict, cfg) -> dict:
    """Pixel-weighted regional errors and the codebook's use over the whole validation set (seed
    "VQ-VAE Codebook Metrics"): a code is dead if no validation latent vector took it."""
    shares = means.pop("code_shares", None)
    out = seg_summary(means) if segmenting(cfg) else {
        **regional_summary(means, images_of(cfg)),
        **{f"{size}_loss": error for size, error in size_errors(means).items()}}
    if shares is not None:
        out.update(codebook_stats(torch.tensor(shares)))
    return out


def seg_summary(means: dict) -> dict:
    """seg_compression: Dice and IoU pooled over every validation voxel (losses.compression.
    pooled_overlap), and the share of validation slices whose mask is empty (they count only by
    their false positives)."""
    out = {k: v for k, v in means.items()
           if k not in ("overlap_tp", "overlap_sizes", "empty_target") and not k.endswith(("_sum", "_lesions"))}
    return out | pooled_overlap(means["overlap_tp"], means["overlap_sizes"]) | {
        "empty_target_share": means["empty_target"]} | lesion_dice(means)
