import math

import pytest
import torch

from losstune.models.hdr_patch import HDRPatchModel, bounded_delta, log_normalize

EPS = 1e-6


def saturated(model, value=100.0):
    """Make the network's raw output `value` everywhere, so tanh(r) = 1: the cap is reached."""
    last = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(value)
    return model


def patches(batch=2, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 7, size, size, generator=g) * 100.0


def test_log_normalize_hand_worked():
    # pixels e^0 - eps and e^2 - eps: log(x + eps) = 0 and 2, so min 0 and denom 2
    rgb = torch.tensor([1.0 - EPS, math.exp(2.0) - EPS]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    log_img, min_log, denom = log_normalize(rgb, EPS)
    assert torch.allclose(log_img[0, 0, 0], torch.tensor([0.0, 2.0]), atol=1e-5)
    assert min_log.item() == pytest.approx(0.0, abs=1e-5) and denom.item() == pytest.approx(2.0, abs=1e-5)


def test_log_normalize_clamps_negative_input_and_flat_range():
    rgb = torch.full((1, 3, 2, 2), -5.0)  # negative radiance is clamped to 0: log(eps) everywhere
    log_img, _, denom = log_normalize(rgb, EPS)
    assert torch.allclose(log_img, torch.full_like(log_img, math.log(EPS)))
    assert denom.item() == pytest.approx(1e-6)  # max - min = 0, clamped


def test_bounded_delta_hand_worked():
    bounded = torch.tensor([1.0, -1.0, 0.5])
    # Mode A at the seed's defaults: alpha 1.2 * abs_max 16 = 19.2
    assert torch.allclose(bounded_delta(bounded, 1.2 * 16.0, 1.0, None), torch.tensor([19.2, -19.2, 9.6]))
    # the seed's phase-1 safety clamp at 8
    assert torch.allclose(bounded_delta(bounded, 1.2 * 16.0, 1.0, 8.0), torch.tensor([8.0, -8.0, 8.0]))


def test_mode_a_delta_reaches_but_never_exceeds_19_2_at_defaults():
    model = HDRPatchModel(channels=(8, 16))
    out = model(patches())
    assert out["delta_log"].abs().max() <= 19.2 + 1e-4
    out = saturated(model)(patches())
    assert torch.allclose(out["delta_log"], torch.full_like(out["delta_log"], 19.2))


def test_clamp_holds_whatever_the_network_says():
    model = saturated(HDRPatchModel(channels=(8, 16), clamp_value=8.0), value=1e4)
    assert out_max(model) == pytest.approx(8.0)


def out_max(model):
    return model(patches())["delta_log"].abs().max().item()


def test_mode_b_cap_scales_with_each_patchs_log_range():
    model = saturated(HDRPatchModel(channels=(8, 16), mode="B", log_delta_scale=0.9))
    x = patches(batch=2)
    x[1, :3] = x[1, :3] ** 2 + 1e-3  # a second patch with a different log range
    out = model(x)
    _, _, denom = log_normalize(x[:, :3], EPS)
    assert not torch.isclose(denom[0], denom[1])
    for i in range(2):
        assert torch.allclose(out["delta_log"][i], 0.9 * denom[i].expand_as(out["delta_log"][i]), rtol=1e-5)


def test_learnable_scale_replaces_the_cap_and_learns():
    model = saturated(HDRPatchModel(channels=(8, 16), learnable_scale=True, scale_init=6.0))
    out = model(patches())
    assert torch.allclose(out["delta_log"], torch.full_like(out["delta_log"], 6.0))
    out["delta_log"].sum().backward()
    assert model.output_scale.grad is not None and model.output_scale.grad.abs().item() > 0


def test_adaptive_scaler_stays_in_2_to_10():
    model = saturated(HDRPatchModel(channels=(8, 16), adaptive_scaler=True))
    last = model.scaler.predictor[3]
    for bias, bound in ((50.0, 10.0), (-50.0, 2.0)):  # softplus about 50, then about 0: clamped
        with torch.no_grad():
            last.bias.fill_(bias)
        delta = model(patches(batch=4))["delta_log"]  # tanh 1 everywhere: delta is the cap
        assert torch.allclose(delta, torch.full_like(delta, bound))


def test_adaptive_scaler_starts_mid_range_and_learns():
    # the seed's initialisation started the softplus near 0.6 (<2): clamped, no gradient, the cap
    # stuck at 2 for good. Here it starts at (2 + 10) / 2 = 6 for every patch, inside the clamp
    model = HDRPatchModel(channels=(8, 16), adaptive_scaler=True)
    out = model(patches(batch=4, seed=1))
    assert torch.allclose(out["cap"], torch.full_like(out["cap"], 6.0), atol=1e-5)
    out["delta_log"].abs().mean().backward()
    last = model.scaler.predictor[3]
    assert last.weight.grad.abs().max() > 0 and last.bias.grad.abs().max() > 0
    optimiser = torch.optim.Adam(model.scaler.parameters(), lr=1e-3)  # Adam at the loop's lr (it uses AdamW)
    for _ in range(3):  # a smaller residual is asked for: the cap shrinks, and differs by patch
        optimiser.zero_grad()
        out = model(patches(batch=4, seed=1))
        out["delta_log"].abs().mean().backward()
        optimiser.step()
    cap = model(patches(batch=4, seed=1))["cap"].flatten()
    assert (cap < 6.0).all() and (cap > 2.0).all() and cap.std() > 0


@pytest.mark.parametrize("options", [
    {}, {"mode": "B"}, {"clamp_value": 8.0}, {"output_norm": True}, {"learnable_scale": True},
    {"adaptive_scaler": True}, {"mode": "B", "clamp_value": 4.0, "output_norm": True},
])
def test_forward_every_option(options):
    model = HDRPatchModel(channels=(8, 16), **options)
    x = patches()
    out = model(x)
    assert set(out) == {"pred", "delta_log", "log_img", "tanh", "cap"}
    for name, value in out.items():
        assert torch.isfinite(value).all()
        if name != "cap":  # the cap broadcasts: a scalar, per channel or per patch
            assert value.shape == (2, 3, 16, 16)
    # the pipeline's last step: pred = exp(log_img + delta_log) - eps
    assert torch.allclose(out["pred"], torch.exp(out["log_img"] + out["delta_log"]) - EPS, rtol=1e-5)


def test_bad_option_combinations_are_refused():
    with pytest.raises(ValueError, match="needs mode 'A'"):
        HDRPatchModel(mode="B", learnable_scale=True)
    with pytest.raises(ValueError, match="choose one"):
        HDRPatchModel(learnable_scale=True, adaptive_scaler=True)


def test_per_channel_learnable_scale_scales_each_channel_and_learns_each():
    model = saturated(HDRPatchModel(channels=(8, 16), learnable_scale=True, scale_per_channel=True))
    with torch.no_grad():
        model.output_scale.copy_(torch.tensor([2.0, 4.0, 6.0]).view(1, 3, 1, 1))
    out = model(patches())
    for channel, scale in enumerate((2.0, 4.0, 6.0)):
        assert torch.allclose(out["delta_log"][:, channel], torch.full_like(out["delta_log"][:, channel], scale))
    (out["delta_log"] * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)).sum().backward()
    grad = model.output_scale.grad.flatten()
    assert (grad > 0).all() and grad[0] < grad[1] < grad[2]  # each channel's own gradient
    with pytest.raises(ValueError, match="needs learnable_scale"):
        HDRPatchModel(scale_per_channel=True)


def test_the_cap_used_is_returned():
    assert HDRPatchModel(channels=(8, 16))(patches())["cap"].item() == pytest.approx(19.2)
    assert HDRPatchModel(channels=(8, 16), learnable_scale=True)(patches())["cap"].item() == pytest.approx(6.0)
