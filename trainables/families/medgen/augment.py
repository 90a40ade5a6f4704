"""ScoreAug and SDA in medgen_diffusion's training step (seed 001; the transforms are
losses/score_aug.py).

ScoreAug transforms the noisy input x_t, its conditioning mask and the target alike, after the
noise is added: x -> add noise -> T(x_t) -> denoise -> T(target), so the network learns to denoise
equivariantly without learning a transformed data distribution. A rotation or flip (and a fixed
pattern) is told to the network by omega, the transform's index, added to the UNet's time
embedding (MONAI's class embedding); translation and cutout need none. Sampling and validation
ask for the identity (omega 0).

SDA transforms the clean image (and mask) before the noise, at a time shifted later by
noise_shift, as a second path whose unweighted MSE is the term `sda` beside the plain one.
ScoreAug and SDA are alternatives (the seed: never both).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from losstune.losses.score_aug import (CUTOUT_SIDE, DIHEDRAL, MAX_SHIFT, PATTERN_FAMILIES, PATTERNS, apply_pattern,
                                       cutout, dihedral, translate)


@dataclass(frozen=True)
class Transform:
    """What one sample's ScoreAug does, in this order."""

    element: int = 0  # of the square's 8 symmetries (rotation, then a flip along W)
    shift: tuple[int, int] | None = None  # (dy, dx) pixels
    cut: tuple[int, int, int] | None = None  # (top, left, side)
    pattern: int | None = None  # 0-15

    @property
    def omega(self) -> int:
        """The class the network is told: the symmetry, and the pattern where there is one."""
        return self.element + DIHEDRAL * (0 if self.pattern is None else self.pattern + 1)

    @property
    def invertible(self) -> bool:
        return self.shift is None and self.cut is None and self.pattern is None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = dihedral(x, self.element)
        if self.shift is not None:
            out = translate(out, *self.shift)
        if self.cut is not None:
            out = cutout(out, *self.cut)
        if self.pattern is not None:
            out = apply_pattern(out, self.pattern)
        return out


def omega_classes(cfg) -> int:
    """The class embeddings the UNet needs for ScoreAug's omega (0: no omega conditioning)."""
    s = cfg.score_aug
    if not (s.enabled and s.use_omega_conditioning):
        return 0
    return DIHEDRAL * (1 + PATTERNS) if s.v2_mode else DIHEDRAL


def draw(s, h: int, w: int, rng: random.Random) -> Transform:
    """One sample's transform: single mode one of the enabled kinds or none, each kind as likely;
    compose each enabled kind with compose_prob; v2 each non-destructive kind with
    nondestructive_prob, then with destructive_prob cutout or one of the enabled fixed patterns."""
    kinds = [k for k in ("rotation", "flip", "translation", "cutout") if getattr(s, k)]
    if s.v2_mode:
        chosen = {k for k in kinds if k != "cutout" and rng.random() < s.nondestructive_prob}
        destructive = rng.random() < s.destructive_prob
        patterns = [p for family, ids in PATTERN_FAMILIES.items() if getattr(s.patterns, family) for p in ids]
        if destructive and (rng.random() < s.cutout_vs_pattern or not patterns):
            chosen.add("cutout")
        pattern = rng.choice(patterns) if destructive and "cutout" not in chosen else None
    elif s.compose:
        chosen, pattern = {k for k in kinds if rng.random() < s.compose_prob}, None
    else:
        chosen, pattern = {rng.choice(kinds + ["none"])}, None
    turn = rng.randint(1, 3) if "rotation" in chosen else 0
    # a flip along W, or along H (= a half turn more, then along W)
    element = (turn + 2 * rng.randint(0, 1)) % 4 + 4 if "flip" in chosen else turn
    shift = (round(rng.uniform(-MAX_SHIFT[0], MAX_SHIFT[0]) * h), round(rng.uniform(-MAX_SHIFT[1], MAX_SHIFT[1]) * w)) \
        if "translation" in chosen else None
    side = max(1, round(rng.uniform(*CUTOUT_SIDE) * min(h, w)))
    cut = (rng.randrange(h - side + 1), rng.randrange(w - side + 1), side) if "cutout" in chosen else None
    return Transform(element, shift, cut, pattern)


def each(transforms: list[Transform], x: torch.Tensor) -> torch.Tensor:
    """Every sample of the batch under its own transform."""
    return torch.stack([t(sample) for t, sample in zip(transforms, x)])


def draw_batch(s, x: torch.Tensor) -> list[Transform]:
    """A transform per sample, from Python's generator seeded from torch's (the loop seeds that
    per worker)."""
    rng = random.Random(int(torch.randint(0, 2**31 - 1, ())))
    return [draw(s, x.shape[2], x.shape[3], rng) for _ in range(len(x))]


def sda_transforms(s, count: int) -> list[Transform]:
    """SDA's rotation and / or flip per sample, never the identity."""
    elements = sorted(({1, 2, 3} if s.rotation else set()) | ({4, 6} if s.flip else set())
                      | ({5, 7} if s.rotation and s.flip else set()))
    picked = torch.randint(0, len(elements), (count,)).tolist()
    return [Transform(elements[k]) for k in picked]
