import pytest
import torch

from losstune.data.medgen_modes import mode_channels
from losstune.models.medgen import DiffusionNet, add_feature_noise

SMALL = {"widths": (8, 16, 16), "attention": (False, False, True), "norm_groups": 8, "head_channels": 8}


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("mode, images, conditioning", [("seg", 1, 0), ("bravo", 1, 1), ("dual", 2, 1)])
def test_forward_predicts_the_image_channels(spatial_dims, mode, images, conditioning):
    net = DiffusionNet(spatial_dims, *mode_channels(mode), **SMALL)
    shape = (16,) * spatial_dims
    x_t, condition = torch.randn(2, images, *shape), torch.randn(2, conditioning, *shape)
    out = net(torch.cat([x_t, condition], dim=1), torch.tensor([10.0, 900.0]))
    assert out.shape == (2, images, *shape) and torch.isfinite(out).all()


def test_the_networks_defaults_are_the_configs():
    # one default for the head size: the model's own agrees with the config's (MONAI's 8)
    import inspect

    from losstune.trainables.families.medgen.denoiser_config import ModelConfig

    defaults = {name: p.default for name, p in inspect.signature(DiffusionNet).parameters.items()}
    config = ModelConfig()
    assert defaults["head_channels"] == config.head_channels == 8
    assert (tuple(defaults["widths"]), tuple(defaults["attention"])) == (config.widths, config.attention)
    assert (defaults["res_blocks"], defaults["norm_groups"]) == (config.res_blocks, config.norm_groups)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_flash_attention_computes_what_monais_einsum_attention_does(spatial_dims):
    # the same weights through torch's scaled_dot_product_attention and MONAI's einsum + softmax:
    # the same outputs and gradients to float32 rounding (only the kernel differs, not the model)
    torch.manual_seed(0)
    einsum = DiffusionNet(spatial_dims, 2, 1, **SMALL, flash_attention=False)
    torch.nn.init.normal_(einsum.unet.out[-1].conv.weight)  # MONAI zero-initialises the output conv
    flash = DiffusionNet(spatial_dims, 2, 1, **SMALL, flash_attention=True)
    flash.load_state_dict(einsum.state_dict())
    for net, kernel in ((einsum, False), (flash, True)):  # every attention block on the asked-for kernel
        assert {m.use_flash_attention for m in net.modules() if hasattr(m, "use_flash_attention")} == {kernel}
    shape = (16,) * spatial_dims
    inputs = (torch.randn(2, 2, *shape), torch.tensor([5.0, 500.0]))
    outputs = [net(*inputs) for net in (einsum, flash)]
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5) and outputs[0].abs().max() > 1e-2
    for out in outputs:
        out.square().sum().backward()
    # as one vector: some parameters' true gradient is 0 (a bias before a GroupNorm), both rounding noise
    grads = [torch.cat([p.grad.flatten() for p in net.parameters()]) for net in (einsum, flash)]
    assert (grads[0] - grads[1]).norm() <= 1e-4 * grads[0].norm()


@pytest.mark.parametrize("layers", [("mid",), ("encoder",), ("decoder",), ("encoder", "mid", "decoder")])
def test_feature_noise_perturbs_only_while_training(layers):
    torch.manual_seed(0)
    net = DiffusionNet(2, 2, 1, **SMALL)  # bravo: x_t and the mask in, one image out
    torch.nn.init.normal_(net.unet.out[-1].conv.weight)  # MONAI zero-initialises the output conv
    inputs = (torch.randn(2, 2, 16, 16), torch.tensor([5, 500]))
    clean = net(*inputs)
    handles = add_feature_noise(net, layers, std=0.1)
    assert len(handles) == sum({"mid": 1, "encoder": 3, "decoder": 3}[layer] for layer in layers)  # one per block
    net.train()
    first, second = net(*inputs), net(*inputs)
    assert not torch.allclose(first, second) and not torch.allclose(first, clean)
    net.eval()
    assert torch.allclose(net(*inputs), clean)
