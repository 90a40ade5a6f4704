"""Errors by tumour size (losses/tumour_size.py), on blobs of known size."""

import math

import numpy as np
import pytest
import torch

from losstune.losses.tumour_size import bin_counts, feret_diameter, lesion_dice, lesion_dice_sums, size_bin, size_errors, size_sums


def disc(side: int, radius: float, centre: tuple) -> np.ndarray:
    ys, xs = np.mgrid[:side, :side]
    return (ys - centre[0]) ** 2 + (xs - centre[1]) ** 2 <= radius ** 2


def test_feret_diameters_worked_by_hand():
    line = np.zeros((5, 20), bool)
    line[2, 3:13] = True  # 10 voxels: their outer corners span 10 x 1 voxels
    assert feret_diameter(line, (1.0, 1.0)) == pytest.approx(math.hypot(10, 1))
    assert feret_diameter(line, (1.0, 0.5)) == pytest.approx(math.hypot(5, 1))  # W voxels of 0.5 mm
    square = np.zeros((8, 8), bool)
    square[2:5, 2:5] = True  # a 3 x 3 square: its diagonal, corner to corner, is 3 sqrt(2)
    assert feret_diameter(square, (2.0, 2.0)) == pytest.approx(6 * math.sqrt(2))
    cube = np.zeros((6, 6, 6), bool)
    cube[1:3, 1:3, 1:3] = True  # 2 x 2 x 2 voxels: the space diagonal 2 sqrt(3)
    assert feret_diameter(cube, (1.0, 1.0, 1.0)) == pytest.approx(2 * math.sqrt(3))
    single = np.zeros((3, 3), bool)
    single[1, 1] = True
    assert feret_diameter(single, (1.0, 1.0)) == pytest.approx(math.sqrt(2))


def test_rano_bm_bins():
    assert [size_bin(d) for d in (0.5, 9.99, 10.0, 19.9, 20.0, 30.0, 55.0)] == [
        "tiny", "tiny", "small", "small", "medium", "large", "large"]


def test_each_tumours_error_goes_to_its_size_bin_weighted_by_its_voxels():
    # one sample, 1 mm voxels: a disc of radius 2 (diameter about 5 mm: tiny, 13 voxels) with squared
    # error 1, and a disc of radius 7 (about 15 mm: small, 149 voxels) with squared error 3
    small_disc, large_disc = disc(64, 2, (10, 10)), disc(64, 7, (40, 40))
    seg = torch.from_numpy(small_disc | large_disc).float()[None, None]
    error = torch.from_numpy(small_disc * 1.0 + large_disc * 3.0).float()[None, None]
    sums = size_sums(error, seg, torch.tensor([[1.0, 1.0]]))
    assert sums["tiny_count"].item() == small_disc.sum() == 13 and sums["tiny_sq_sum"].item() == 13.0
    assert sums["small_count"].item() == large_disc.sum() and sums["small_sq_sum"].item() == 3.0 * large_disc.sum()
    errors = size_errors({k: v.mean().item() for k, v in sums.items()})
    assert errors["tiny"] == 1.0 and errors["small"] == 3.0 and math.isnan(errors["medium"])
    # at 3 mm voxels the small disc measures about 15 mm (small) and the other about 45 mm (large)
    coarse = size_sums(error, seg, torch.tensor([[3.0, 3.0]]))
    assert coarse["small_count"].item() == 13 and coarse["large_count"].item() == large_disc.sum()


def test_lesion_wise_dice_per_size_bin_worked_by_hand():
    # a tiny tumour (a 3 x 3 square, 3 mm) found exactly (Dice 1) and a small one (a 12 x 1 line, about
    # 12 mm) predicted as its left half (6 of 12 voxels: Dice 2 x 6 / (12 + 6) = 2/3); a false
    # positive far from both touches no tumour and enters no bin
    truth = np.zeros((32, 32), bool)
    truth[2:5, 2:5] = True
    truth[20, 5:17] = True
    predicted = np.zeros((32, 32), bool)
    predicted[2:5, 2:5] = True
    predicted[20, 5:11] = True
    predicted[30, 30] = True
    logits = torch.from_numpy(np.where(predicted, 5.0, -5.0)).float()[None, None]
    sums = lesion_dice_sums(logits, torch.from_numpy(truth).float()[None, None], torch.tensor([[1.0, 1.0]]))
    means = {k: v.mean().item() for k, v in sums.items()}
    dice = lesion_dice(means)
    assert dice["dice_tiny"] == 1.0 and dice["dice_small"] == pytest.approx(2 / 3) and math.isnan(dice["dice_large"])
    assert means["dice_tiny_lesions"] == 1 and means["dice_small_lesions"] == 1


def test_conditioning_bins_put_every_rano_bm_threshold_on_an_edge():
    # edges 3, 6, 10, 15, 20, 30 mm: bins [0, 3), [3, 6), [6, 10), [10, 15), [15, 20), [20, 30), 30+.
    # Bars of 1 x L voxels at 1 mm have Feret diameter sqrt(L^2 + 1): L = 2 -> 2.2 (bin 0), 9 -> 9.06
    # (bin 2), 10 -> 10.05 (bin 3, the RANO-BM tiny / small threshold crossed), 29 -> 29.02 (bin 5),
    # 30 -> 30.02 (bin 6, large)
    mask = np.zeros((12, 40), bool)
    for row, length in enumerate((2, 9, 10, 29, 30)):
        mask[2 * row, :length] = True
    assert bin_counts(mask, (1.0, 1.0)).tolist() == [1, 0, 1, 1, 0, 1, 1]
    # at 0.5 mm each is half as long: 1.1 (bin 0), 4.5 and 5.0 (bin 1), 14.5 (bin 3), 15.0 (bin 4)
    assert bin_counts(mask, (0.5, 0.5)).tolist() == [1, 2, 0, 1, 1, 0, 0]
