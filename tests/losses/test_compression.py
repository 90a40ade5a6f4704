import math

import pytest
import torch

from losstune.losses import compression as losses


def test_l1_is_the_mean_absolute_error_per_sample():
    # sample 0: |0.5 - 0| and |0 - 0| -> 0.25; sample 1: |1 - 0.25| and |0 - 0.25| -> (0.75 + 0.25) / 2 = 0.5
    reconstruction = torch.tensor([[0.5, 0.0], [1.0, 0.0]])
    target = torch.tensor([[0.0, 0.0], [0.25, 0.25]])
    assert torch.allclose(losses.l1(reconstruction, target), torch.tensor([0.25, 0.5]))


def test_kl_by_hand():
    # one sample, two latent elements: (mu 0, sigma 1) contributes 0.5 (0 + 1 - 0 - 1) = 0;
    # (mu 1, sigma 2): 0.5 (1 + 4 - ln 4 - 1) = 2 - ln 2 = 1.306853
    mu = torch.tensor([[0.0, 1.0]])
    sigma = torch.tensor([[1.0, 2.0]])
    assert torch.allclose(losses.kl(mu, sigma), torch.tensor([2 - math.log(2)]))


def test_least_squares_adversarial_terms_by_hand():
    # generator: mean((D(fake) - 1)^2) over D(fake) = [0, 0.5] -> (1 + 0.25) / 2 = 0.625
    fake = torch.tensor([[[[0.0, 0.5]]]])
    assert losses.generator_adversarial(fake).item() == pytest.approx(0.625)
    # discriminator: 0.5 (mean(D(fake)^2) + mean((D(real) - 1)^2)); D(real) = [1, 0]:
    # fake part (0 + 0.25) / 2 = 0.125, real part (0 + 1) / 2 = 0.5 -> 0.5 x 0.625 = 0.3125
    real = torch.tensor([[[[1.0, 0.0]]]])
    assert losses.discriminator_loss(real, fake).item() == pytest.approx(0.3125)


def pooled(logits, mask):
    counts = losses.overlap_counts(logits, mask)
    return losses.pooled_overlap(counts["overlap_tp"].mean().item(), counts["overlap_sizes"].mean().item()), counts


def test_overlap_by_hand_pooled_over_the_set():
    # slice 1: predicted (logit > 0) [1, 1, 0, 0], target [1, 0, 1, 0]: TP 1, |P| + |T| = 4;
    # slice 2: both empty: TP 0, sizes 0. Pooled: Dice 2 * 1 / 4 = 0.5, IoU 1 / (4 - 1) = 1/3.
    # (Per slice and averaged, the empty slice's 1 made it 0.75.)
    logits = torch.tensor([[2.0, 1.0, -1.0, -3.0], [-1.0, -1.0, -1.0, -1.0]]).view(2, 1, 2, 2)
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]).view(2, 1, 2, 2)
    scores, counts = pooled(logits, mask)
    assert scores["dice"] == pytest.approx(0.5) and scores["iou"] == pytest.approx(1 / 3)
    assert counts["empty_target"].tolist() == [0.0, 1.0]


def test_predicting_nothing_scores_0_on_a_volume_with_tumour():
    # 95 slices of 4x4, tumour (4 voxels) in 11 of them: an all-background prediction has TP 0 and
    # sizes 44, Dice 0 (the per-slice mean gave 84/95 = 0.884); a perfect one, 1
    mask = torch.zeros(95, 1, 4, 4)
    mask[:11, :, 1:3, 1:3] = 1.0
    nothing, _ = pooled(torch.full_like(mask, -5.0), mask)
    assert nothing == {"dice": 0.0, "iou": 0.0}
    perfect, _ = pooled(mask * 10 - 5, mask)
    assert perfect["dice"] == pytest.approx(1.0) and perfect["iou"] == pytest.approx(1.0)
    # one false-positive voxel on a tumour-free slice counts against it: Dice 2 * 44 / (44 + 45)
    stray = mask * 10 - 5
    stray[50, 0, 0, 0] = 5.0
    assert pooled(stray, mask)[0]["dice"] == pytest.approx(88 / 89)
    # a set with no tumour at all and no prediction: nothing to find, nothing claimed
    assert pooled(torch.full((2, 1, 2, 2), -1.0), torch.zeros(2, 1, 2, 2))[0]["dice"] == 1.0


def test_segmentation_terms_bce_by_hand_and_perfect_logits_score_near_zero():
    # BCE of logit 0 is ln 2 whatever the target
    zero = losses.segmentation_terms(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4))
    assert zero["bce"].item() == pytest.approx(math.log(2))
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    perfect = losses.segmentation_terms((mask * 2 - 1) * 20, mask)
    assert perfect["bce"].item() < 1e-6 and perfect["dice"].item() < 1e-4 and perfect["boundary"].item() < 1e-4
    wrong = losses.segmentation_terms((1 - mask * 2) * 20, mask)
    assert wrong["dice"].item() > 0.99 and wrong["boundary"].item() > perfect["boundary"].item()


def test_the_dice_term_is_pooled_over_the_batch_and_an_empty_batch_is_worked_by_hand():
    # An all-empty batch, 2 slices of 2x2, every logit -10: p = sigmoid(-10) = 4.5398e-5 per pixel.
    # Pooled: intersection 0, sum p = 8 x 4.5398e-5 = 3.63186e-4, sum t = 0, MONAI's smoothing 1e-5:
    # 1 - 1e-5 / (3.63186e-4 + 1e-5) = 1 - 0.026796 = 0.973204, given to both slices.
    empty = losses.segmentation_terms(torch.full((2, 1, 2, 2), -10.0), torch.zeros(2, 1, 2, 2))
    assert empty["dice"].tolist() == pytest.approx([0.973204, 0.973204], abs=1e-6)
    # A correct prediction of a batch with a tumour slice (one pixel, logit +10) and an empty one
    # (-10 everywhere): pooled, intersection sigmoid(10) = 0.9999546, sum p 0.9999546 + 7 x 4.5398e-5
    # = 1.0002724, sum t 1: 1 - (2 x 0.9999546 + 1e-5) / (2.0002724 + 1e-5) = 0.0001816. Per slice, the empty one
    # alone scored 1 - 1e-5 / (4 x 4.5398e-5 + 1e-5) = 0.947806, and their mean 0.47: the term pushed
    # every logit of a correct prediction further down.
    mask = torch.zeros(2, 1, 2, 2)
    mask[0, 0, 0, 0] = 1
    terms = losses.segmentation_terms((mask * 2 - 1) * 10, mask)
    assert terms["dice"].tolist() == pytest.approx([0.0001816, 0.0001816], abs=1e-7)


def test_the_boundary_term_by_hand_in_units_of_the_image_side_whatever_the_resolution():
    # Target 2x2 with one tumour pixel at (0, 0); every logit 0, so p = 0.5 everywhere and the
    # prediction (p > 0.5) is empty: its distance field is 0. The target's (MONAI: distance to the
    # nearest other-class pixel) is [[1, 1], [1, sqrt 2]], squared [[1, 1], [1, 2]]. Each pixel's
    # error (0.5 - t)^2 = 0.25: mean 0.25 x (1 + 1 + 1 + 2) / 4 = 0.3125 px^2, over the side 2 squared:
    # 0.078125.
    mask = torch.zeros(1, 1, 2, 2)
    mask[0, 0, 0, 0] = 1
    assert losses.segmentation_terms(torch.zeros_like(mask), mask)["boundary"].item() == pytest.approx(0.078125)
    # The same disc at 32, 64 and 128 px scores the same to within 5% (in pixels it grew 4x per doubling)
    def disc(n):
        y, x = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        return (((y - 0.4 * n) ** 2 + (x - 0.55 * n) ** 2) < (0.2 * n) ** 2).float().view(1, 1, n, n)
    scores = [losses.segmentation_terms(torch.zeros(1, 1, n, n), disc(n))["boundary"].item() for n in (32, 64, 128)]
    assert max(scores) / min(scores) < 1.05


def test_code_shares_and_codebook_stats_by_hand():
    # two samples of two latent vectors over a codebook of 4: codes (0, 0) and (0, 1)
    shares = losses.code_shares(torch.tensor([[0, 0], [0, 1]]), 4)
    assert torch.equal(shares, torch.tensor([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0]]))
    # over the set: code 0 takes 3/4, code 1 1/4; entropy -(0.75 ln 0.75 + 0.25 ln 0.25) = 0.562335
    stats = losses.codebook_stats(shares.mean(0))
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert stats["codebook_utilization"] == 0.5 and stats["codebook_dead_codes"] == 2
    assert stats["codebook_entropy"] == pytest.approx(entropy)
    assert stats["codebook_perplexity"] == pytest.approx(math.exp(entropy))  # 1.7548
    assert stats["codebook_perplexity_pct"] == pytest.approx(100 * math.exp(entropy) / 4)


def test_mixup_and_cutmix_are_off_at_probability_zero_and_mix_within_the_batch():
    images = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    assert losses.mixed(images, 0.0, 0.0) is images
    torch.manual_seed(0)
    mixed = losses.mixed(images, 1.0, 0.0)  # MixUp: convex combinations of the two images
    assert mixed.shape == images.shape and mixed.min() >= 0 and mixed.max() <= 1
    assert all(torch.allclose(image, image.flatten()[0].expand_as(image)) for image in mixed)  # a blend of uniform images
    cut = losses.mixed(images, 0.0, 1.0)  # CutMix: every pixel comes from one of the two images
    assert set(cut.unique().tolist()) <= {0.0, 1.0}
