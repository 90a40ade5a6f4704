"""The transforms of ScoreAug and Shifted Data Augmentation (seed 001, "Score Augmentation" and
"Shifted Data Augmentation"), on batches [B, C, H, W] or [B, C, H, W, D], per sample.

- the 8 symmetries of the square (`dihedral`): rotations by 0, 90, 180, 270 degrees in the image's
  H-W plane (the axial plane of a volume), each with or without a flip along W. Gaussian noise
  looks the same under all of them, so a network could not tell a rotated image from an upright
  one by its noise: ScoreAug tells it (omega conditioning, the element's index);
- translation by up to 40% of W and 20% of H, with zero padding, and cutout of a random square of
  10-30% of the side (the seed's ranges): destructive, they need no omega;
- 16 fixed patterns (ScoreAug v2's destructive masks): checkerboards (ids 0-3), grid dropout
  (4-7), coarse dropout (8-11), patch dropout (12-15), each a fixed mask, announced by omega.

The seed names the pattern families and counts but not their exact masks: each is fixed here by
its id (below), the same in every run.
"""

from __future__ import annotations

import torch

DIHEDRAL = 8  # identity, rot90, rot180, rot270, and each of them flipped
PATTERNS = 16
PATTERN_FAMILIES = {"checkerboard": range(0, 4), "grid_dropout": range(4, 8), "coarse_dropout": range(8, 12),
                    "patch_dropout": range(12, 16)}
MAX_SHIFT = (0.2, 0.4)  # seed: +-20% in Y (H), +-40% in X (W)
CUTOUT_SIDE = (0.1, 0.3)  # seed: a square of 10-30% of the side


def dihedral(x: torch.Tensor, element: int) -> torch.Tensor:
    """Symmetry `element` (0-7) of one sample [C, H, W(, D)]: rotate by (element % 4) x 90 degrees
    in the H-W plane, then flip along W where element >= 4. Square H-W planes only."""
    turned = torch.rot90(x, element % 4, dims=(1, 2))
    return turned.flip(2) if element >= 4 else turned


def translate(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """One sample moved by (dy, dx) pixels in H and W; what moves in from outside is zero."""
    out = torch.zeros_like(x)
    h, w = x.shape[1], x.shape[2]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = x[:, ys, xs]
    return out


def cutout(x: torch.Tensor, top: int, left: int, side: int) -> torch.Tensor:
    """One sample with the square [top, top + side) x [left, left + side) of its H-W plane zeroed."""
    out = x.clone()
    out[:, top:top + side, left:left + side] = 0
    return out


def pattern_mask(pattern: int, h: int, w: int) -> torch.Tensor:
    """The fixed [H, W] 0/1 mask of pattern `pattern` (0-15); 0 where the image is dropped.

    0-3 checkerboards of 4 x 4 or 8 x 8 cells (0, 2: top-left cell kept; 1, 3: the offset board,
    top-left dropped); 4-7 grid dropout, 4 x 4 cells of which 25% (4, 5) or 50% (6, 7) are dropped,
    the cells drawn once from the pattern's id; 8-11 coarse dropout, holes of a quarter of each
    side: 2 opposite corners (8), all 4 corners (9), the middle of the left and right edges (10),
    of the top and bottom edges (11); 12-15 patch dropout as MAE masks, 8 x 8 patches of which
    25% (12, 13) or 50% (14, 15) are dropped, drawn once from the id."""
    ys, xs = torch.arange(h)[:, None], torch.arange(w)[None, :]
    if pattern < 4:
        cells = 4 if pattern < 2 else 8
        board = ((ys * cells // h) + (xs * cells // w)) % 2 == 0
        return (board if pattern % 2 == 0 else ~board).float()
    if pattern < 8 or pattern >= 12:
        cells, share = (4, 0.25 if pattern < 6 else 0.5) if pattern < 8 else (8, 0.25 if pattern < 14 else 0.5)
        dropped = torch.randperm(cells * cells, generator=torch.Generator().manual_seed(pattern))[:int(share * cells ** 2)]
        keep = torch.ones(cells * cells)
        keep[dropped] = 0
        return keep.reshape(cells, cells)[ys * cells // h, xs * cells // w]
    mask = torch.ones(h, w)
    qh, qw = h // 4, w // 4
    holes = {8: [(0, 0), (h - qh, w - qw)], 9: [(0, 0), (0, w - qw), (h - qh, 0), (h - qh, w - qw)],
             10: [((h - qh) // 2, 0), ((h - qh) // 2, w - qw)], 11: [(0, (w - qw) // 2), (h - qh, (w - qw) // 2)]}
    for top, left in holes[pattern]:
        mask[top:top + qh, left:left + qw] = 0
    return mask


def apply_pattern(x: torch.Tensor, pattern: int) -> torch.Tensor:
    """One sample [C, H, W(, D)] times pattern `pattern`'s mask (the same on every slice of a volume)."""
    mask = pattern_mask(pattern, x.shape[1], x.shape[2]).to(x)
    return x * (mask[..., None] if x.ndim == 4 else mask)
