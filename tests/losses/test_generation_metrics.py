"""KID, CMMD and FID (losses/generation_metrics.py), with values worked out by hand."""

import math

import pytest
import torch

from losstune.losses.generation_metrics import cmmd, fid, kid


def test_kid_of_a_two_point_set_against_itself():
    # 1-d features {0, 1} in both sets, kernel (x y / 1 + 1)^3: k(0,0) = k(0,1) = 1, k(1,1) = 8.
    # Sum of the 2x2 kernel matrix S = 11, its diagonal D = 9. Unbiased MMD^2:
    # (S - D) / (m (m - 1)) for each set = 2 / 2 = 1, twice, minus 2 S / m^2 = 2 * 11 / 4 = 5.5:
    # 1 + 1 - 5.5 = -3.5 (the unbiased estimate can be negative), the same at every subset
    x = torch.tensor([[0.0], [1.0]])
    assert kid(x, x, subsets=3, subset_size=2) == (pytest.approx(-3.5), 0.0)


def test_kid_tells_two_samples_of_one_gaussian_from_a_shifted_one():
    generator = torch.Generator().manual_seed(0)
    real, same = torch.randn(400, 8, generator=generator), torch.randn(400, 8, generator=generator)
    shifted = torch.randn(400, 8, generator=generator) + 1.0
    alike, spread = kid(real, same, subsets=20, subset_size=200)
    apart, _ = kid(real, shifted, subsets=20, subset_size=200)
    # unbiased: the same distribution scores about 0; a shift of 1 sd in each of 8 dims far more
    assert abs(alike) < 3 * spread + 1e-3 and apart > 20 * max(abs(alike), spread)
    assert kid(real, same, subsets=5, subset_size=100, seed=1) == kid(real, same, subsets=5, subset_size=100, seed=1)


def test_cmmd_of_two_orthogonal_unit_embeddings():
    # k(e1, e1) = k(e2, e2) = 1; |e1 - e2|^2 = 2, so k(e1, e2) = exp(-2 / (2 * 10^2)) = exp(-0.01)
    # = 0.990050; CMMD = 1000 (1 + 1 - 2 x 0.990050) = 19.90
    e1, e2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert cmmd(e1, e2) == pytest.approx(1000 * (2 - 2 * math.exp(-0.01)))
    assert cmmd(e1, e2) == pytest.approx(19.90, abs=0.01) and cmmd(e1, e1) == 0.0


def test_fid_of_two_gaussians_is_the_squared_distance_of_their_means_when_they_share_a_covariance():
    # FID = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)); with equal covariances the trace is 0.
    # The same points shifted by (3, 4): |shift|^2 = 25
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(200, 2, generator=generator)
    assert fid(real, real + torch.tensor([3.0, 4.0])) == pytest.approx(25.0, abs=1e-3)


@pytest.mark.parametrize("samples, features", [(30, 8), (12, 64)])
def test_fid_in_the_samples_space_agrees_with_monais_on_the_full_covariances(samples, features):
    # more samples than features (full-rank covariances) and fewer (singular ones, as at 100 samples
    # of ResNet-50's 2048 features): the nuclear-norm form is exact in both
    from monai.metrics import FIDMetric

    generator = torch.Generator().manual_seed(1)
    real = torch.randn(samples, features, generator=generator)
    fake = 1.5 * torch.randn(samples + 3, features, generator=generator) + 0.3
    reference = float(FIDMetric()(fake.double(), real.double()))
    assert fid(real, fake) == pytest.approx(reference, rel=1e-6, abs=1e-8)
