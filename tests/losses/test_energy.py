import pytest
import torch

from losstune.losses.energy import patch_swd, patches_3x3, same_quantiles, sample_rows, self_similarity, ssm_distance


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def test_patches_are_3x3_neighbourhoods_with_zero_padding():
    x = torch.arange(9.0).view(1, 1, 3, 3)
    patches = patches_3x3(x)
    assert patches.shape == (1, 9, 9) and patches.is_contiguous()
    # the centre position's patch is the whole image; the corner (0, 0) sees zeros above and left
    assert patches[0, 4].tolist() == list(range(9))
    assert patches[0, 0].tolist() == [0, 0, 0, 0, 0, 1, 0, 3, 4]
    assert not patches_3x3(x, contiguous=False).is_contiguous()


def test_swd_by_hand_for_one_direction():
    # x: one channel of 1x1 images: each 3x3 patch is zeros around the pixel, so projected on
    # theta its value is pixel * theta[4]; with one projection |theta| = 1. Pixels x {0, 2},
    # y {1, 1}: sorted projections (0, 2 theta4) vs (theta4, theta4): squared differences
    # theta4^2 each -> SWD = theta4^2.
    x = torch.tensor([0.0, 2.0]).view(2, 1, 1, 1)
    y = torch.tensor([1.0, 1.0]).view(2, 1, 1, 1)
    theta = torch.randn(9, 1, generator=seeded())
    theta4 = (theta / theta.norm())[4, 0]
    assert float(patch_swd(x, y, projections=1, generator=seeded())) == pytest.approx(float(theta4**2), rel=1e-5)


def test_swd_is_zero_for_identical_inputs_and_grows_with_a_shift():
    x = torch.randn(4, 4, 8, 8, generator=seeded(1))
    distances = [float(patch_swd(x + shift, x, generator=seeded())) for shift in (0.0, 0.1, 0.5, 1.0)]
    assert distances[0] == 0.0
    assert distances == sorted(distances) and distances[1] > 0


def test_swd_ignores_the_order_of_the_patches():
    x, y = torch.randn(4, 4, 8, 8, generator=seeded(1)), torch.randn(4, 4, 8, 8, generator=seeded(2))
    reordered = y[torch.tensor([2, 0, 3, 1])]  # the same patches, in another order
    assert float(patch_swd(x, reordered, generator=seeded())) == pytest.approx(
        float(patch_swd(x, y, generator=seeded())), rel=1e-6)


def test_swd_stratified_compares_each_element_with_its_own_reference():
    a, b = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    x, y = torch.cat([a, b]), torch.cat([b, a])  # the same mixture, but swapped per element
    assert float(patch_swd(x, y, generator=seeded())) == 0.0  # global: mixtures match
    assert float(patch_swd(x, y, stratified=True, generator=seeded())) > 0.1


@pytest.mark.parametrize("stratified, shape", [(False, (1, 100, 36)), (True, (4, 25, 36))])
def test_swd_sampling_cap_is_respected(stratified, shape):
    patches = torch.randn(4, 64, 36)
    assert sample_rows(patches, 100, stratified, seeded()).shape == shape
    kept = sample_rows(patches, 10_000, stratified, seeded())
    assert kept.shape[0] * kept.shape[1] == 4 * 64  # all patches when they fit


def test_quantile_matching_of_sets_of_different_sizes():
    # 2 values against 4: the 4 are read at quantiles (i + 0.5) * 4 / 2 -> rows 1 and 3
    a, b = torch.tensor([[[0.0], [1.0]]]), torch.tensor([[[0.0], [1.0], [2.0], [3.0]]])
    _, matched = same_quantiles(a, b)
    assert matched.flatten().tolist() == [1.0, 3.0]


def test_self_similarity_by_hand():
    # two positions with features (1, 0) and (1, 1): unit vectors (1, 0) and (1/sqrt2, 1/sqrt2);
    # cosines: 1 on the diagonal, 1/sqrt2 off it
    features = torch.tensor([[1.0, 1.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    expected = torch.tensor([[1.0, 2**-0.5], [2**-0.5, 1.0]])
    assert torch.allclose(self_similarity(features, None)[0], expected, atol=1e-6)


def test_ssm_by_hand():
    # x: features (1, 0), (0, 1) -> SSM [[1, 0], [0, 1]]; y: (1, 0), (1, 0) -> [[1, 1], [1, 1]];
    # squared differences 0, 1, 1, 0 -> mean 0.5
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    y = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).view(1, 2, 1, 2)
    assert float(ssm_distance(x, y, 0)) == pytest.approx(0.5)


def test_ssm_ignores_the_scale_of_the_features():
    x, y = torch.randn(2, 4, 8, 8, generator=seeded(1)), torch.randn(2, 4, 8, 8, generator=seeded(2))
    assert float(ssm_distance(3.7 * x, y, 32, seeded())) == pytest.approx(float(ssm_distance(x, y, 32, seeded())),
                                                                          rel=1e-5)
    assert float(ssm_distance(5.0 * x, x, 0)) == pytest.approx(0.0, abs=1e-10)


def test_ssm_samples_the_same_positions_in_both_inputs():
    x = torch.randn(2, 4, 8, 8, generator=seeded(1))
    assert float(ssm_distance(x, x.clone(), 16, seeded())) == 0.0  # same positions: identical matrices
    assert ssm_distance(x, x, 16, seeded(), reduce=False).shape == (2,)


def test_distances_run_in_fp32_under_autocast():
    x, y = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        swd, ssm = patch_swd(x, y), ssm_distance(x, y, 16)
    assert swd.dtype == torch.float32 and ssm.dtype == torch.float32
