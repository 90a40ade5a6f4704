import pytest
import torch

from losstune.models.lgt import StyleFlow, divergence_hutchinson

SMALL = dict(num_styles=3, widths=(16, 16), attention=(False, True), norm_groups=8, head_channels=8)


def small_flow(seed=0):
    torch.manual_seed(seed)
    flow = StyleFlow(**SMALL)
    # MONAI zero-initialises the output convolution (v = 0, the identity flow); give it weights so
    # that the flow moves
    torch.nn.init.normal_(flow.unet.out[-1].conv.weight, std=0.1)
    return flow


def test_forward_shape_and_the_null_style_is_one_more_class():
    flow = small_flow()
    x = torch.randn(2, 4, 16, 16)
    x1, velocity_sq = flow(x, torch.tensor([0, 3]), steps=2)  # 3 = the null style
    assert x1.shape == x.shape and velocity_sq.ndim == 0 and float(velocity_sq.detach()) > 0
    assert flow.null_style == 3


def test_an_untrained_monai_unet_is_the_identity_flow():
    flow = StyleFlow(**SMALL)
    x = torch.randn(2, 4, 16, 16)
    x1, velocity_sq = flow(x, torch.tensor([0, 1]), steps=3)
    assert torch.equal(x1, x) and float(velocity_sq.detach()) == 0.0


def test_euler_step_adds_dt_times_velocity():
    flow = small_flow()
    x, style = torch.randn(2, 4, 16, 16), torch.tensor([1, 2])
    x1, _ = flow(x, style, steps=1)
    torch.testing.assert_close(x1, x + flow.velocity(x, torch.zeros(2), style))


def test_guidance_scale_one_is_the_conditional_velocity_and_two_extrapolates():
    flow = small_flow()
    x, t, style = torch.randn(2, 4, 16, 16), torch.rand(2), torch.tensor([0, 1])
    conditional = flow.velocity(x, t, style)
    unconditional = flow.velocity(x, t, torch.full_like(style, flow.null_style))
    torch.testing.assert_close(flow.guided_velocity(x, t, style, 1.0), conditional)
    torch.testing.assert_close(flow.guided_velocity(x, t, style, 2.0), 2 * conditional - unconditional,
                               atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", ["euler", "midpoint"])
def test_gradients_through_checkpointed_steps_equal_the_plain_ones(method):
    x, style = torch.randn(2, 4, 16, 16), torch.tensor([0, 2])
    grads = []
    for checkpoint in (False, True):
        flow = small_flow(seed=1)
        x1, velocity_sq = flow(x, style, steps=3, method=method, checkpoint=checkpoint)
        (x1.pow(2).mean() + velocity_sq).backward()
        grads.append(torch.cat([p.grad.flatten() for p in flow.parameters() if p.grad is not None]))
    assert grads[1].abs().sum() > 0  # gradient reaches the network through every checkpointed step
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-4)


def test_hutchinson_divergence_estimates_the_trace_of_the_jacobian():
    flow = small_flow()
    x, t, style = torch.randn(1, 4, 4, 4), torch.rand(1), torch.tensor([1])
    jacobian = torch.autograd.functional.jacobian(lambda z: flow.velocity(z, t, style), x).reshape(64, 64)
    generator = torch.Generator().manual_seed(0)
    estimates = torch.stack([divergence_hutchinson(flow, x, t, style, generator) for _ in range(400)])
    # Rademacher probes: unbiased, variance 2 * sum of squared off-diagonal entries per probe
    off_diagonal = jacobian.pow(2).sum() - jacobian.diagonal().pow(2).sum()
    tolerance = 4 * float((2 * off_diagonal / 400).sqrt())
    assert float(estimates.mean().detach()) == pytest.approx(float(jacobian.trace()), abs=tolerance)
    assert estimates.requires_grad  # a penalty on it trains the network
