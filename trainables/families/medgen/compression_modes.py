"""What each medgen_compression mode reads, compresses and trains (seed 001 "VAE Modes"): asked by the
family, its validation and its autoencoder's builder alike."""

from __future__ import annotations

from losstune.data.medgen_modes import MODE_IMAGES

# the compression mode -> the diffusion mode whose files it reads (its conditioning is not used)
READS = {"bravo": "bravo", "dual": "dual", "seg": "seg", "seg_compression": "seg", "multi_modality": "multi_modality"}
MODALITIES = sorted({m for mode in READS.values() for m in MODE_IMAGES[mode]})


def gan_on(cfg) -> bool:
    """Whether the run has a discriminator at all (seed `disable_gan`: none is created)."""
    return cfg.gan.enabled and cfg.loss.weights.adversarial > 0


def segmenting(cfg) -> bool:
    return cfg.data.mode == "seg_compression"


def uses_perceptual(cfg) -> bool:
    return cfg.loss.weights.perceptual > 0 and not segmenting(cfg)


def images_of(cfg) -> tuple[str, ...]:
    """The modalities a mode compresses, one channel each (seed "VAE Modes": dual t1_pre and
    t1_gd, multi_modality each of bravo, flair, t1_pre and t1_gd, every other mode one image)."""
    return MODE_IMAGES[READS[cfg.data.mode]]


def pooled(cfg) -> bool:
    """multi_modality (seed "VAE Modes": "Pools all modalities", 1 channel): one autoencoder for every
    modality, trained on each modality's slices as items of their own; validated on all four of each
    slice, one at a time, so that its quality is reported per modality."""
    return cfg.data.mode == "multi_modality"
