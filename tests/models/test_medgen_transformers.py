"""medgen's transformer denoisers: shapes in 2D and 3D, the seed's variant sizes, adaLN-Zero's start,
and that the timestep, the class (omega / mode) and the mask channel each reach the output."""

import pytest
import torch
from torch import nn

from losstune.models.medgen_transformers import DiT, HDiT, UViT, parameter_count
from losstune.trainables.families.medgen.denoiser_config import VARIANTS

TINY = {DiT: dict(width=32, depth=3, heads=4, patch=2), HDiT: dict(width=32, level_depths=(1, 1, 1), heads=4, patch=2),
        UViT: dict(width=32, depth=3, heads=4, patch=2)}
SIDES = {2: (16, 16), 3: (8, 8, 8)}


def unzeroed(model: nn.Module) -> nn.Module:
    """The model with its zero-initialised gates and output layer drawn at random, as training
    makes them: at initialisation adaLN-Zero's output is 0 whatever the input."""
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if p.abs().max() == 0:
            nn.init.normal_(p, std=0.2)
    return model


@pytest.mark.parametrize("cls", [DiT, HDiT, UViT])
@pytest.mark.parametrize("dims", [2, 3])
def test_each_denoiser_maps_its_input_to_the_image_channels(cls, dims):
    model = cls(dims, 3, 2, SIDES[dims], **TINY[cls])
    x = torch.randn(2, 3, *SIDES[dims])
    out = model(x, torch.tensor([1, 900]))
    assert out.shape == (2, 2, *SIDES[dims])
    out.pow(2).mean().backward()  # every parameter on the gradient's path
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("cls", [DiT, HDiT])
def test_adaln_zero_starts_at_zero(cls):
    model = cls(2, 2, 1, SIDES[2], **TINY[cls])
    assert model(torch.randn(2, 2, 16, 16), torch.tensor([3, 700])).abs().max() == 0


@pytest.mark.parametrize("cls", [DiT, HDiT, UViT])
def test_the_timestep_the_class_and_the_mask_each_change_the_prediction(cls):
    model = unzeroed(cls(2, 2, 1, SIDES[2], omega_classes=3, **TINY[cls])).eval()
    x = torch.randn(1, 2, 16, 16)
    t, omega = torch.tensor([100]), torch.tensor([0])
    base = model(x, t, omega=omega)
    masked = x.clone()
    masked[:, 1] = 0.0  # the conditioning channel (the seg mask) only
    for changed in (model(x, torch.tensor([800]), omega=omega), model(x, t, omega=torch.tensor([2])),
                    model(masked, t, omega=omega)):
        assert (changed - base).abs().max() > 1e-4
    assert torch.equal(model(x, t), base)  # no class given is class 0


def test_the_variants_have_the_seeds_parameter_counts():
    # seed "Model Architectures": DiT S 33M, B 130M, L 458M, XL 675M; UViT S ~44M, S-Deep ~58M,
    # M ~131M (its L, "~304M", is 288M here, as in the U-ViT paper's 287M)
    seed = {("dit", "S"): 33, ("dit", "B"): 130, ("dit", "L"): 458, ("dit", "XL"): 675,
            ("uvit", "S"): 44, ("uvit", "S-Deep"): 58, ("uvit", "M"): 131}
    with torch.device("meta"):
        for (kind, variant), millions in seed.items():
            width, depth, heads = VARIANTS[kind][variant]
            model = (DiT if kind == "dit" else UViT)(2, 4, 4, (32, 32), width, depth, heads, patch=2)
            assert parameter_count(model) / 1e6 == pytest.approx(millions, rel=0.03)


def test_hdit_merges_and_splits_cells_of_the_token_grid():
    model = HDiT(2, 1, 1, (16, 16), **TINY[HDiT])  # 8x8 tokens, one merge: 4x4
    tokens = torch.arange(64.0).view(1, 64, 1).repeat(1, 1, 32)
    with torch.no_grad():
        model.merges[0].weight.zero_()
        model.merges[0].weight[0, : 4 * 32: 32] = 1.0  # output 0 = the sum of the cell's 4 tokens' channel 0
        model.merges[0].bias.zero_()
        merged = model.merged(tokens, 0)
    # the top-left 2x2 cell holds tokens 0, 1, 8, 9 (row-major over the 8x8 grid): 18
    assert merged.shape == (1, 16, 32) and merged[0, 0, 0].item() == 18.0
    assert merged[0, 5, 0].item() == 18.0 + 19 + 26 + 27  # cell (1, 1): tokens 18, 19, 26, 27
    with torch.no_grad():  # split maps each token back to its cell, channel c of position (i, j) from channel c
        model.splits[0].weight.copy_(torch.eye(32).repeat(4, 1))
        model.splits[0].bias.zero_()
        split = model.split(merged, 0)
    assert split.shape == (1, 64, 32) and split[0, 9, 0].item() == 18.0 and split[0, 2, 0].item() == 2.0 + 3 + 10 + 11
