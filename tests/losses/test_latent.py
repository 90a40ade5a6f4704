import pytest
import torch

from losstune.losses.latent import (FeatureCapture, consistency_term, frobenius_term, hier_scale, perceptual_term,
                                    robust_terms, smooth_targets)
from losstune.models.latent_conditioner import LatentConditioner

T = torch.tensor


def identity_features(z):
    return [z]


@pytest.mark.parametrize("name, value, expected", [
    # pred [0, 1] vs target [0.5, 0.5]: errors 0.5 each -> MSE 0.25, MAE 0.5
    ("mse", lambda: robust_terms(T([0.0, 1.0]), T([0.5, 0.5]))["mse"], 0.25),
    ("mae", lambda: robust_terms(T([0.0, 1.0]), T([0.5, 0.5]))["mae"], 0.5),
    # Huber beta 0.1, |d| = 0.5 >= beta: |d| - beta / 2 = 0.45
    ("huber", lambda: robust_terms(T([0.0, 1.0]), T([0.5, 0.5]), 0.1)["huber"], 0.45),
    # inside beta: 0.5 d^2 / beta = 0.5 * 0.0025 / 0.1 = 0.0125
    ("huber small", lambda: robust_terms(T([0.05]), T([0.0]), 0.1)["huber"], 0.0125),
    # adaptive hierarchical weight max(1, 0.5 * main / hier): 0.5 * 4 / 1 = 2; 0.5 * 1 / 1 -> 1
    ("hier scale 2", lambda: hier_scale(T(4.0), T(1.0)), 2.0),
    ("hier scale floor", lambda: hier_scale(T(1.0), T(1.0)), 1.0),
    # cosine([1,0],[0,1]) = 0 and cosine([1,0],[2,0]) = 1: 1 - mean(0, 1) = 0.5
    ("perceptual", lambda: perceptual_term(identity_features, T([[1.0, 0.0], [1.0, 0.0]]),
                                           T([[0.0, 1.0], [2.0, 0.0]])), 0.5),
    # main [1, 1] vs [0, 0]: MSE 1; hier [0] vs [1]: MSE 1 -> 2
    ("consistency", lambda: consistency_term((T([1.0, 1.0]), T([0.0])), (T([0.0, 0.0]), T([1.0]))), 2.0),
    # map 1 = [[1, 2], [3, 4]] (B = 2): 1 + 4 + 9 + 16 = 30, summed over the batch as the seed's
    # torch.sum(S**2); map 2 zeros -> 0; mean over the maps 15
    ("frobenius", lambda: frobenius_term([T([[1.0, 2.0], [3.0, 4.0]]).view(2, 1, 1, 2), torch.zeros(2, 3)]), 15.0),
])
def test_terms(name, value, expected):
    assert float(value()) == pytest.approx(expected, rel=1e-6), name


def test_frobenius_equals_the_seeds_svd_sum_of_squares():
    # the seed's term for one map is sum(S^2) of feature_map.view(B, -1): the same number, no SVD,
    # and no division by the batch (its reg_weight 1e-4 was meant for this scale)
    features = torch.randn(4, 3, 5, 5)
    singular = torch.linalg.svdvals(features.view(4, -1))
    assert float(frobenius_term([features])) == pytest.approx(float((singular**2).sum()), rel=1e-5)


def test_frobenius_refuses_the_seeds_empty_placeholder_list():
    with pytest.raises(ValueError, match="no feature maps"):
        frobenius_term([])


def test_label_smoothing_shrinks_targets_towards_zero():
    torch.testing.assert_close(smooth_targets(T([1.0, -1.0]), 0.1), T([0.9, -0.9]))
    assert smooth_targets(T([1.0]), 0.0) is not None


def test_feature_capture_holds_two_real_maps_per_block_and_removes_its_hooks():
    net = LatentConditioner(image_size=32, filters=(8, 16), encoder_dim=16)
    with FeatureCapture(net.blocks) as capture:
        net(torch.rand(2, 1, 32, 32))
    shapes = [tuple(f.shape) for f in capture.features]
    assert shapes == [(2, 8, 16, 16), (2, 8, 16, 16), (2, 16, 8, 8), (2, 16, 8, 8)]
    assert all(f.requires_grad for f in capture.features)  # the regulariser trains the network
    net(torch.rand(2, 1, 32, 32))
    assert len(capture.features) == 4  # hooks gone after the block
