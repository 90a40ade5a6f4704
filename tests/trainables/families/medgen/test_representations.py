"""medgen_diffusion's SpaceToDepth and Wavelet spaces: exact round trips, the Haar transform by hand,
the per-subband normalisation, bad configs in one line, and a run in each through the loop."""

import math

import pytest
import torch

from losstune.trainables.registry import load_family
from losstune.trainables.config import ConfigError, merge
from losstune.trainables.family_api import make_config
from losstune.trainables.families.medgen import representations as spaces
from losstune.trainables.families.medgen import diffusion as medgen

FAMILY = load_family("medgen_diffusion")


def config(overrides=None):
    return make_config(FAMILY, merge(medgen.SMOKE, overrides or {}))


@pytest.fixture(autouse=True)
def fresh_spaces():
    spaces.space_of.cache_clear()
    yield
    spaces.space_of.cache_clear()


def test_the_haar_transform_of_one_block_by_hand():
    # a 2x2 block [[a, b], [c, d]] = [[1, 2], [3, 4]]; the rows of H = kron([[1, 1], [1, -1]], same) / 2
    # LL = (a + b + c + d) / 2 = 5; LH = (a - b + c - d) / 2 = -1; HL = (a + b - c - d) / 2 = -2;
    # HH = (a - b - c + d) / 2 = 0
    block = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    assert spaces.haar(block).flatten().tolist() == pytest.approx([5.0, -1.0, -2.0, 0.0])
    # in 3D the low band of a constant 2x2x2 block of ones is 8 / sqrt(8) = 2 sqrt(2), the rest 0
    cube = spaces.haar(torch.ones(1, 1, 2, 2, 2)).flatten()
    assert cube[0].item() == pytest.approx(2 * math.sqrt(2)) and cube[1:].abs().max().item() < 1e-6


@pytest.mark.parametrize("shape", [(2, 3, 8, 6), (2, 2, 8, 4, 6)])
def test_each_space_is_an_exact_round_trip(shape):
    images = torch.rand(shape)
    for space in (spaces.SpaceToDepthSpace(2), spaces.WaveletSpace.measured(images)):
        z = space.encode(images)
        assert z.shape == (shape[0], shape[1] * 2 ** (len(shape) - 2), *(s // 2 for s in shape[2:]))
        assert torch.allclose(space.decode(z), images, atol=1e-6)
    assert torch.equal(spaces.SpaceToDepthSpace(4).decode(spaces.SpaceToDepthSpace(4).encode(images[..., :4])),
                       images[..., :4]) if len(shape) == 4 else True


def test_space_to_depth_keeps_each_block_in_one_cell():
    images = torch.arange(16.0).view(1, 1, 4, 4)
    z = spaces.SpaceToDepthSpace(2).encode(images)
    assert z[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]  # the top-left block, row by row
    assert z[0, :, 1, 1].tolist() == [10.0, 11.0, 14.0, 15.0]


def test_the_haar_transform_keeps_energy_and_each_subband_is_normalised():
    images = torch.rand(16, 2, 8, 8, 8) * torch.tensor([1.0, 3.0]).view(1, 2, 1, 1, 1)
    bands = spaces.haar(images)
    assert torch.allclose(bands.pow(2).sum(), images.pow(2).sum(), rtol=1e-5)  # orthonormal
    space = spaces.WaveletSpace.measured(images)
    z = space.encode(images).transpose(0, 1).flatten(1)
    assert z.shape[0] == 16  # 2 modalities x 8 subbands
    assert torch.allclose(z.mean(1), torch.zeros(16), atol=1e-5)
    assert torch.allclose(z.std(1), torch.ones(16), atol=1e-4)


def test_the_mask_moves_with_the_space_and_an_empty_one_stays_empty():
    cond, z = torch.rand(2, 1, 8, 8), torch.zeros(2, 4, 4, 4)
    assert spaces.SpaceToDepthSpace(2).condition(cond, z).shape == (2, 4, 4, 4)
    wavelet = spaces.WaveletSpace.measured(torch.rand(4, 1, 8, 8))
    assert torch.allclose(wavelet.condition(cond, z), spaces.haar(cond))  # not normalised: a mask's own scale
    assert wavelet.condition(torch.zeros(2, 0, 8, 8), z).shape == (2, 0, 4, 4)


@pytest.mark.parametrize("overrides, message", [
    ({"representation": {"name": "space_to_depth", "factor": 1}}, r"representation\.factor must be >= 2, got 1"),
    ({"representation": {"name": "space_to_depth", "factor": 3}},
     r"data\.image_size 32: 32x32 images do not fit representation\.name=space_to_depth, which shrinks every side 3x"),
    ({"representation": {"name": "wavelet"}, "data": {"image_size": 36}},
     r"data\.image_size 36: 36x36 images \(in wavelet space, 18x18\) do not fit model\.widths \[16, 32, 32\]"),
    ({"representation": {"name": "wavelet"}, "score_aug": {"enabled": True}},
     r"score_aug\.enabled rotates and flips the network's input, which in representation\.name=wavelet is not an image"),
    ({"representation": {"name": "space_to_depth"}, "loss": {"perceptual_weight": 0.001}},
     r"loss\.perceptual_weight is pixel space only; set it to 0 with representation\.name=space_to_depth"),
])
def test_a_space_that_does_not_fit_is_one_line_naming_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message) as error:
        config(overrides)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name, dims, channels_in", [("space_to_depth", 2, 8), ("wavelet", 3, 16)])
def test_a_run_in_each_space_trains_and_is_judged_in_pixels(tmp_path, name, dims, channels_in):
    # in this process (LocalSession): the loop a TorchTrainer runs; bravo: [bravo, seg] -> bravo,
    # each moved to the space (2D: 4 cells a block, 3D: 8 subbands)
    from losstune.trainables.engine.loop import train
    from losstune.trainables.engine.session import LocalSession

    overrides = merge(medgen.SMOKE, {"representation": {"name": name}, "model": {"spatial_dims": dims},
                                     "train": {"batch_size": 2, "epochs": 1}})
    parts = FAMILY.build(config(overrides))
    assert parts.model.unet.conv_in.conv.in_channels == channels_in
    session = LocalSession(str(tmp_path))
    train(FAMILY, overrides, session)
    metrics = session.reports[-1]
    assert metrics["stop_reason"] == "" and math.isfinite(metrics["val/mse"])
    assert 0 < metrics["val/msssim"] <= 1  # the estimates decoded to pixels and judged there


def test_generated_samples_come_back_as_images(tmp_path):
    from losstune.trainables.families.medgen.generation import generate

    cfg = config({"representation": {"name": "wavelet"}, "generation": {"num_steps": 2}})
    parts = FAMILY.build(cfg)
    image, cond = parts.val_set.items[0][:2]
    shape = tuple(spaces.space_of(cfg).encode(image[None]).shape[1:])
    samples = generate(parts.model, cfg, cond[None].repeat(2, 1, 1, 1), shape)
    assert samples.shape == (2, *image.shape) and 0 <= samples.min() and samples.max() <= 1
