"""ScoreAug's and SDA's transforms (losses/score_aug.py), on small cases worked by hand."""

import torch

from losstune.losses.score_aug import PATTERNS, apply_pattern, cutout, dihedral, pattern_mask, translate

SQUARE = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # one channel, [[1, 2], [3, 4]]


def test_the_eight_symmetries_of_a_two_by_two_image():
    # rot90 (counter-clockwise): [[2, 4], [1, 3]]; a flip along W: [[2, 1], [4, 3]];
    # element 6 = a half turn [[4, 3], [2, 1]] then a flip along W = [[3, 4], [1, 2]], the flip along H
    assert dihedral(SQUARE, 0).tolist() == [[[1, 2], [3, 4]]]
    assert dihedral(SQUARE, 1).tolist() == [[[2, 4], [1, 3]]]
    assert dihedral(SQUARE, 4).tolist() == [[[2, 1], [4, 3]]]
    assert dihedral(SQUARE, 6).tolist() == [[[3, 4], [1, 2]]]
    assert len({tuple(dihedral(SQUARE, e).flatten().tolist()) for e in range(8)}) == 8  # all different
    volume = torch.arange(8.0).reshape(1, 2, 2, 2)  # a volume turns in its H-W (axial) plane, slice by slice
    assert torch.equal(dihedral(volume, 1)[..., 0], dihedral(volume[..., 0], 1))


def test_a_translation_brings_in_zeros_and_a_cutout_zeroes_its_square():
    image = torch.arange(1.0, 10.0).reshape(1, 3, 3)  # [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert translate(image, 1, 0).tolist() == [[[0, 0, 0], [1, 2, 3], [4, 5, 6]]]
    assert translate(image, 0, -1).tolist() == [[[2, 3, 0], [5, 6, 0], [8, 9, 0]]]
    assert cutout(image, 1, 1, 2).tolist() == [[[1, 2, 3], [4, 0, 0], [7, 0, 0]]]


def test_the_sixteen_fixed_patterns():
    masks = [pattern_mask(p, 8, 8) for p in range(PATTERNS)]
    assert len({tuple(m.flatten().tolist()) for m in masks}) == PATTERNS  # sixteen different masks
    # checkerboard of 4 x 4 cells on 8 x 8: 2 x 2 pixel cells, the top-left kept; its offset twin inverts it
    assert masks[0][:2, :4].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]] and torch.equal(masks[1], 1 - masks[0])
    assert masks[2][0, :3].tolist() == [1, 0, 1]  # 8 x 8 cells: one pixel each
    # grid dropout: 4 of 16 cells (25%) or 8 (50%) dropped, 4 pixels a cell here
    assert [int((masks[p] == 0).sum()) for p in (4, 5, 6, 7)] == [16, 16, 32, 32]
    # coarse dropout: four 2 x 2 corner holes; patch dropout: 16 or 32 of 64 one-pixel patches
    assert int((masks[9] == 0).sum()) == 16 and masks[9][0, 0] == 0 and masks[9][7, 7] == 0 and masks[9][3, 3] == 1
    assert [int((masks[p] == 0).sum()) for p in (12, 14)] == [16, 32]
    volume = torch.ones(1, 8, 8, 3)
    assert torch.equal(apply_pattern(volume, 9)[..., 2], masks[9][None])  # the same mask on every slice
