"""The generation metrics' feature networks (models/feature_extractors.py), from local files."""

import pytest
import torch

from losstune.models.feature_extractors import alexnet_features, as_rgb_slices, load_clip, load_lpips, load_resnet50


def torchvision_layout_resnet50(path, fitted: bool = True) -> dict:
    """A randomly initialised ResNet-50 saved as torchvision saves one: its layer names, a
    1000-class classifier, and no bias on the shortcut convolutions. `fitted`: its batch norms'
    running statistics estimated on two batches of random images, as a trained network's are
    (nothing here can be downloaded); unfitted, check_resnet50_weights calls it untrained."""
    from monai.networks.nets import resnet50

    network = resnet50(spatial_dims=2, n_input_channels=3, conv1_t_stride=2, num_classes=1000)
    if fitted:
        with torch.no_grad():
            for _ in range(2):
                network.train()(torch.rand(4, 3, 64, 64))
    state = {k: v for k, v in network.state_dict().items() if not k.endswith("downsample.0.bias")}
    torch.save(state, path)
    return state


def test_a_torchvision_layout_resnet50_loads_and_gives_2048_features_per_channel_and_slice(tmp_path):
    saved = torchvision_layout_resnet50(tmp_path / "resnet50.pth")
    assert len(saved) == 320  # as many tensors as torchvision's resnet50 state dict, fc's 2 included
    network = load_resnet50(str(tmp_path / "resnet50.pth"))
    assert torch.equal(network.resnet.layer1[0].conv1.weight, saved["layer1.0.conv1.weight"])
    assert not network.resnet.layer1[0].downsample[0].bias.any()  # torchvision's has none: zero
    images = torch.rand(2, 2, 32, 32)  # two dual-mode samples: 2 channels each
    assert network(images).shape == (4, 2048)
    assert network(torch.rand(1, 1, 16, 16, 3)).shape == (3, 2048)  # a volume: its 3 axial slices


def test_a_file_that_is_no_resnet50_is_refused_naming_it(tmp_path):
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=f"{tmp_path / 'other.pth'} is no torchvision-layout ResNet-50"):
        load_resnet50(str(tmp_path / "other.pth"))


def test_a_saved_clip_vision_model_gives_unit_embeddings(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=16)
    CLIPVisionModelWithProjection(config).save_pretrained(tmp_path / "clip")
    network = load_clip(str(tmp_path / "clip"))
    embeddings = network(torch.rand(3, 1, 24, 24))  # resized to the model's 32
    assert embeddings.shape == (3, 16) and torch.allclose(embeddings.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_each_channel_and_slice_is_a_grey_image_repeated_to_rgb():
    images = torch.arange(2 * 2 * 1 * 1 * 3, dtype=torch.float).reshape(2, 2, 1, 1, 3)
    rgb = as_rgb_slices(images)
    assert rgb.shape == (12, 3, 1, 1) and torch.equal(rgb[:, 0], rgb[:, 2])
    assert rgb[0, 0, 0, 0] == images[0, 0, 0, 0, 0] and rgb[1, 0, 0, 0] == images[0, 1, 0, 0, 0]


def torchvision_layout_alexnet(path) -> dict:
    """A randomly initialised AlexNet saved as torchvision saves one: `features.N` for the trunk,
    `classifier.N` for the (dropped) classifier."""
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in alexnet_features().state_dict().items()}
    state |= {"classifier.1.weight": torch.zeros(8, 9216), "classifier.1.bias": torch.zeros(8)}
    torch.save(state, path)
    return state


def test_lpips_loads_the_trunk_from_the_file_and_the_published_linear_layers(tmp_path):
    import os

    from torchmetrics.functional.image import lpips as reference

    saved = torchvision_layout_alexnet(tmp_path / "alexnet.pth")
    network = load_lpips(str(tmp_path / "alexnet.pth")).network
    assert torch.equal(getattr(network.net.slice1, "0").weight, saved["features.0.weight"])
    assert torch.equal(getattr(network.net.slice5, "10").weight, saved["features.10.weight"])
    # the v0.1 linear layers torchmetrics ships (published with the LPIPS paper), not random ones
    shipped = torch.load(os.path.join(os.path.dirname(reference.__file__), "lpips_models", "alex.pth"), map_location="cpu")
    assert torch.equal(network.lin0.model[1].weight, shipped["lin0.model.1.weight"])


def test_lpips_is_zero_for_the_same_image_symmetric_and_grows_with_the_difference(tmp_path):
    torchvision_layout_alexnet(tmp_path / "alexnet.pth")
    lpips = load_lpips(str(tmp_path / "alexnet.pth"))
    torch.manual_seed(1)
    images = torch.rand(3, 2, 64, 64)  # three dual-mode samples
    slightly, very = ((images + s * torch.randn_like(images)).clamp(0, 1) for s in (0.05, 0.3))
    assert lpips(images, images).shape == (3,) and torch.equal(lpips(images, images), torch.zeros(3))
    assert torch.allclose(lpips(images, very), lpips(very, images), atol=1e-6)
    assert (0 < lpips(images, slightly)).all() and (lpips(images, slightly) < lpips(images, very)).all()
    # two channels: the mean of each scored alone
    per_channel = (lpips(images[:, :1], very[:, :1]) + lpips(images[:, 1:], very[:, 1:])) / 2
    assert torch.allclose(lpips(images, very), per_channel, atol=1e-6)


def test_a_file_that_is_no_alexnet_is_refused_naming_it(tmp_path):
    torch_layout = tmp_path / "resnet50.pth"
    torchvision_layout_resnet50(torch_layout)
    with pytest.raises(ValueError, match=f"{torch_layout} is no torchvision-layout AlexNet"):
        load_lpips(str(torch_layout))


def test_weights_that_cannot_rank_generated_images_are_named(tmp_path):
    # a random network's batch norms keep mean 0 and variance 1: its KID scored blur farther than
    # noise on MRI; a text file made every trial die at its first validation (UnpicklingError)
    from losstune.models.feature_extractors import check_resnet50_weights

    torchvision_layout_resnet50(tmp_path / "untrained.pth", fitted=False)
    torchvision_layout_resnet50(tmp_path / "fitted.pth")
    (tmp_path / "notes.txt").write_text("not weights")
    assert "looks untrained (every batch norm's running mean 0 and variance 1)" in check_resnet50_weights(
        str(tmp_path / "untrained.pth"))
    assert check_resnet50_weights(str(tmp_path / "notes.txt")).startswith(f"{tmp_path / 'notes.txt'}: not ResNet-50 "
                                                                          "weights (")
    assert check_resnet50_weights(str(tmp_path / "fitted.pth")) == ""
