"""What each MedGen mode reads and makes (seed 001 "Diffusion Modes", "VAE Modes"): the images it
generates, the channels it is conditioned on, and the channel counts a network needs for it."""

from __future__ import annotations

# seed "Diffusion Modes": the images a mode generates, and the channels it is conditioned on;
# multi_modality (seed "VAE Modes", compression only) reads all four images, pooled one at a time
IMAGES = ("bravo", "flair", "t1_pre", "t1_gd")
MODE_IMAGES = {"seg": ("seg",), "bravo": ("bravo",), "bravo_seg_cond": ("bravo",), "dual": ("t1_pre", "t1_gd"),
               "multi": IMAGES,
               "seg_conditioned": ("seg",),
               "seg_conditioned_3d": ("seg",), "seg_conditioned_input": ("seg",), "multi_modality": IMAGES}
MODE_CONDITIONING = {"seg": (), "bravo": ("seg",), "bravo_seg_cond": ("seg",), "dual": ("seg",), "multi": ("seg",),
                     "seg_conditioned": (),
                     "seg_conditioned_3d": (),
                     "seg_conditioned_input": (), "multi_modality": ()}
# seed "Diffusion Modes": masks generated conditioned on the tumours' size bins (losses.tumour_size
# CONDITIONING_BINS), as a vector the network embeds (FiLM) or as binary maps beside the mask
# ("1 + 7 bin maps"). The data gives both as one map per bin (Items' `size_bins`): the count of the
# item's tumours in that bin, or whether it has one.
SIZE_CONDITIONED = {"seg_conditioned": "counts", "seg_conditioned_3d": "counts", "seg_conditioned_input": "binary"}
# seed "Diffusion Modes": multi, [image, seg] + mode embedding: every modality of MODE_IMAGES["multi"]
# an item of its own, its modality given as one-hot constant maps after the mask (Items' `modalities`)


def mode_channels(mode: str) -> tuple[int, int]:
    """(in_channels, out_channels) of a mode's network, the seed's channel table: seg 1->1,
    bravo 2->1, dual 3->2 (the images it generates, plus what it is conditioned on)."""
    images = 1 if mode == "multi" else len(MODE_IMAGES[mode])  # multi: one modality at a time
    return images + len(MODE_CONDITIONING[mode]) + vector_channels(mode), images


def vector_channels(mode: str) -> int:
    """How many constant maps of a vector follow a mode's masks in its conditioning: the size bins
    (seg_conditioned*), the one-hot modality (multi)."""
    # here, not at the top: loads torch only where this runs
    from losstune.losses.tumour_size import CONDITIONING_BINS

    if mode == "multi":
        return len(MODE_IMAGES[mode])
    return CONDITIONING_BINS if mode in SIZE_CONDITIONED else 0


def embedded_channels(mode: str) -> int:
    """How many of those the network embeds rather than convolves: all but seg_conditioned_input's
    binary maps, which the seed gives beside the mask as input channels."""
    return 0 if SIZE_CONDITIONED.get(mode) == "binary" else vector_channels(mode)


def binary_mode(mode: str) -> bool:
    """Whether the mode's images are masks (no empty-slice skipping, nearest interpolation, no
    perceptual loss)."""
    return MODE_IMAGES[mode] == ("seg",)


def modalities_for(mode: str) -> tuple[str, ...]:
    """The files a mode reads: its images, its conditioning, and seg (for the regional metrics)."""
    return tuple(dict.fromkeys(MODE_IMAGES[mode] + MODE_CONDITIONING[mode] + ("seg",)))
