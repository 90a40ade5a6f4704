"""Frozen feature networks for the generation metrics (seed 001, "Feature Extractors"), each from
local weights only; nothing is downloaded.

- ResNet-50 features (2048-d, the pooled output before the classifier): MONAI's ResNet-50, which
  names its layers as torchvision's, loaded from a torchvision-layout state dict (ImageNet's
  resnet50 weights, or RadImageNet's converted to it). torchvision's shortcut convolutions have no
  bias where MONAI's have one: those biases are set to zero, which is torchvision's network.
- CLIP image embeddings (L2-normalised): a Hugging Face CLIP vision model with projection, from a
  local folder (`CLIPVisionModelWithProjection`; BiomedCLIP's open_clip weights must be converted
  to that layout first). transformers comes with the `hf` extra.

Both take images in [0, 1] with one or more channels, score each channel as a grey image
repeated to RGB, and return one feature row per image and channel; volumes are scored per axial
slice.
"""

from __future__ import annotations

import pickle

import torch
import torch.nn.functional as F
from torch import nn
from unittest import mock
import json
import os

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET_SIDE = 224  # ImageNet's input size
SHORTCUT_BIASES = "downsample.0.bias"


def as_rgb_slices(images: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] or [N, C, H, W, D] in [0, 1] -> [N * C (* D), 3, H, W]: each channel (and axial
    slice) a grey image repeated to three channels."""
    if images.ndim == 5:
        images = images.permute(0, 4, 1, 2, 3).flatten(0, 1)  # slices become samples
    return images.flatten(0, 1)[:, None].expand(-1, 3, -1, -1)


class ResNetFeatures(nn.Module):
    """2048-d ResNet-50 features of images in [0, 1], resized to 224 and ImageNet-normalised."""

    def __init__(self):
        super().__init__()
        # here, not at the top: loads torch, optuna, monai and more only where this runs
        from monai.networks.nets import resnet50

        # conv1 stride 2, as torchvision's (MONAI's default is 1)
        self.resnet = resnet50(spatial_dims=2, n_input_channels=3, conv1_t_stride=2, num_classes=1000)
        self.resnet.fc = nn.Identity()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        rgb = F.interpolate(as_rgb_slices(images).float(), size=(RESNET_SIDE, RESNET_SIDE), mode="bilinear",
                            align_corners=False)
        return self.resnet((rgb - self.mean) / self.std)


def untrained_batch_norm(state: dict) -> bool:
    """Whether every batch-norm layer's running statistics are still at their start (mean 0,
    variance 1): a network never trained, whatever its file says. Its features are the
    unnormalised outputs of random filters: on MRI slices KID scored a blurred copy farther from
    the real images than noise, and tumours not at all."""
    means = [v for k, v in state.items() if k.endswith("running_mean")]
    variances = [v for k, v in state.items() if k.endswith("running_var")]
    return bool(means) and all(torch.all(m == 0) for m in means) and all(torch.all(v == 1) for v in variances)


def check_resnet50_weights(path: str) -> str:
    """Why the file cannot be the generation metrics' extractor ("" where it can): unreadable as
    weights, no ResNet-50, or untrained. Read once, before Ray starts."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        network = load_resnet50(path)
    except (ValueError, RuntimeError, OSError, EOFError, pickle.UnpicklingError) as err:
        return f"{path}: not ResNet-50 weights ({(str(err).splitlines() or [type(err).__name__])[0]})"
    del network
    if untrained_batch_norm(state.get("state_dict", state) if isinstance(state, dict) else {}):
        return (f"{path} looks untrained (every batch norm's running mean 0 and variance 1): KID and FID on "
                "its features rank by nothing; give trained weights (docs/real-data.md)")
    return ""


def load_resnet50(path: str) -> ResNetFeatures:
    """ResNetFeatures with the torchvision-layout weights in `path` (the classifier's are dropped);
    ValueError naming the file where it holds no ResNet-50."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.get("state_dict", state).items() if not k.startswith("fc.")}
    network = ResNetFeatures()
    for name in [k for k in network.resnet.state_dict() if k.endswith(SHORTCUT_BIASES)]:
        state.setdefault(name, torch.zeros_like(network.resnet.state_dict()[name]))
    try:
        missing, unexpected = network.resnet.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a tensor of another shape
        raise ValueError(f"{path} is no torchvision-layout ResNet-50: {str(err).splitlines()[-1].strip()}") from None
    if missing or unexpected:
        raise ValueError(f"{path} is no torchvision-layout ResNet-50: {len(missing)} weights missing "
                         f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})")
    return network.eval().requires_grad_(False)


class ClipFeatures(nn.Module):
    """L2-normalised CLIP image embeddings of images in [0, 1], at the model's input size and
    normalisation (its preprocessor's, where the folder has one; CLIP's otherwise)."""

    CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's image processor defaults
    CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

    def __init__(self, model: nn.Module, side: int, mean=CLIP_MEAN, std=CLIP_STD):
        super().__init__()
        self.model, self.side = model, side
        self.register_buffer("mean", torch.tensor(mean).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).reshape(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        rgb = F.interpolate(as_rgb_slices(images).float(), size=(self.side, self.side), mode="bicubic",
                            align_corners=False).clamp(0, 1)
        embeddings = self.model(pixel_values=(rgb - self.mean) / self.std).image_embeds
        return F.normalize(embeddings, dim=-1)


def load_clip(folder: str) -> ClipFeatures:
    """ClipFeatures of the CLIP vision model saved in `folder` (transformers' save_pretrained)."""
    # here, not at the top: loads transformers only where this runs
    from transformers import CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection.from_pretrained(folder, local_files_only=True)
    processor = os.path.join(folder, "preprocessor_config.json")
    norm = {}
    if os.path.isfile(processor):
        with open(processor) as f:
            saved = json.load(f)
        norm = {k: tuple(saved[f"image_{k}"]) for k in ("mean", "std") if f"image_{k}" in saved}
    return ClipFeatures(model, model.config.image_size, **norm).eval().requires_grad_(False)


# --- LPIPS (seed "Validation Quality Metrics": Validation/LPIPS, 2D only) -------------------------------

def alexnet_features() -> nn.Sequential:
    """torchvision's AlexNet `features` (the same layers and indices, so its state dict loads): the
    LPIPS backbone, built here because torchvision is not a dependency of losstune."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))


class Lpips(nn.Module):
    """Per-sample LPIPS (Zhang et al. 2018, v0.1, AlexNet) of images in [0, 1], each channel scored
    as a grey image repeated to RGB and the channels averaged. The network is torchmetrics' LPIPS
    (its linear layers are the published v0.1 weights that torchmetrics ships); only the AlexNet
    trunk, which torchmetrics takes from torchvision, is built here and loaded from a local file."""

    def __init__(self, trunk: nn.Sequential):
        super().__init__()

        # here, not at the top: loads matplotlib, scipy, transformers and more only where this runs
        from torchmetrics.functional.image import lpips as reference

        # torchmetrics builds its trunk with torchvision (`_get_tv_model_features`); hand it ours
        with mock.patch.object(reference, "_get_tv_model_features", lambda *args, **kwargs: trunk):
            self.network = reference._NoTrainLpips(net="alex", pnet_rand=True)

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        channels = [self.network(as_rgb_slices(estimate[:, c:c + 1]).float(), as_rgb_slices(reference[:, c:c + 1]).float(),
                                 normalize=True).flatten() for c in range(estimate.shape[1])]
        return torch.stack(channels, 1).mean(1)


def load_lpips(path: str) -> Lpips:
    """Lpips with the AlexNet trunk of the torchvision-layout state dict in `path` (torchvision's
    `alexnet(weights="IMAGENET1K_V1").state_dict()`, as torch hub caches it in
    alexnet-owt-7be5be79.pth; the classifier's weights are dropped); ValueError naming the file
    where it holds no AlexNet."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k[len("features."):]: v for k, v in state.get("state_dict", state).items() if k.startswith("features.")}
    trunk = alexnet_features()
    try:
        trunk.load_state_dict(state)
    except RuntimeError as err:  # missing, unexpected or mis-shaped weights
        detail = " ".join(str(err).split())[:200]
        raise ValueError(f"{path} is no torchvision-layout AlexNet: {detail}") from None
    return Lpips(trunk).eval().requires_grad_(False)
