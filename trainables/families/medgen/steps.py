"""What one step of the medgen_diffusion family computes, apart from its loss and metrics: the
noise scheduler (MONAI's, cached per setting), the model's prediction through MONAI's
DiffusionInferer, the training timesteps (curriculum, jitter), the self-conditioning consistency
term and the perceptual term on a local ResNet-50."""

from __future__ import annotations

import functools

import torch

from losstune.losses.diffusion import curriculum_range, jitter, make_noise_scheduler, sample_t, squeeze_into
from losstune.trainables.config import ConfigError
from losstune.data.medgen_modes import binary_mode
from losstune.models.feature_extractors import load_lpips

TORCHVISION_NEEDED = ("> 0 needs torchvision (MONAI's ResNet-50 perceptual network), which losstune does not "
                      "install; install the torchvision build that matches your torch")
FAKE_3D_RATIO = 0.25  # seed "3D VAE": 2.5D perceptual loss on 25% of the slices


@functools.lru_cache(maxsize=8)
def noise_scheduler(strategy: str, steps: int, spatial_dims: int, base_size: int, transform: bool):
    return make_noise_scheduler(strategy, steps, spatial_dims, base_size, transform)


def scheduler_of(cfg):
    s = cfg.strategy
    return noise_scheduler(s.name, s.num_train_timesteps, cfg.model.spatial_dims, s.transform_base_size,
                           s.timestep_transform)


@functools.lru_cache(maxsize=8)
def inferer_for(scheduler):
    """MONAI's DiffusionInferer: noise added by the scheduler, the conditioning concatenated to the
    noisy image, the network's forward."""
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.inferers import DiffusionInferer

    return DiffusionInferer(scheduler)


def predict(model, x0, noise, timesteps, cond, scheduler) -> torch.Tensor:
    """The model's prediction at x_t = the scheduler's noising of x0, conditioned by concatenation."""
    return inferer_for(scheduler)(x0, model, noise, timesteps, condition=cond, mode="concat")


@functools.lru_cache(maxsize=2)
def perceptual_network(spatial_dims: int, weights_path: str):
    """MONAI's PerceptualLoss on a torchvision ResNet-50 loaded from a local file; for volumes 2.5D
    on 25% of the slices, as the seed's 3D VAE ("2.5D perceptual loss (sample 25% slices)"; MONAI's
    default is half). torchvision is not a dependency of losstune: its PyPI builds are linked to
    CUDA torch (0.28's `_C` needs libtorch_cuda) and do not load beside the CPU build this project
    pins; install the build that matches your torch."""
    try:
        import torchvision  # noqa: F401
    except ImportError as err:
        raise ConfigError("loss.perceptual_weight", TORCHVISION_NEEDED) from err
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.losses import PerceptualLoss

    network = PerceptualLoss(spatial_dims=spatial_dims, network_type="resnet50", is_fake_3d=spatial_dims == 3,
                             fake_3d_ratio=FAKE_3D_RATIO, pretrained=True, pretrained_path=weights_path)
    return network.eval().requires_grad_(False)


@functools.lru_cache(maxsize=2)
def lpips_network(weights_path: str):
    return load_lpips(weights_path)


def lpips_of(cfg, device):
    """The LPIPS network where eval.lpips_weights is set (seed logging.lpips), else None."""
    path = cfg.eval.lpips_weights
    return lpips_network(path).to(device) if path else None


def check_lpips(cfg, images: tuple) -> None:
    """eval.lpips_weights, before Ray starts: 2D images only (seed: "2D only"; not masks) and a file
    that holds an AlexNet, read once here."""
    path = cfg.eval.lpips_weights
    if not path:
        return
    if cfg.model.spatial_dims != 2:
        raise ConfigError("eval.lpips_weights", "LPIPS is 2D only (seed 001 'Validation Quality Metrics'); "
                                                "unset it for spatial_dims=3")
    if images == ("seg",):
        raise ConfigError("eval.lpips_weights", "LPIPS judges images, not masks (seg modes report Dice and IoU); unset it")
    try:
        lpips_network(path)
    except (OSError, RuntimeError, ValueError, KeyError, AttributeError) as err:
        raise ConfigError("eval.lpips_weights", " ".join(str(err).split())) from None


def uses_perceptual(cfg) -> bool:
    return cfg.loss.perceptual_weight > 0 and not binary_mode(cfg.data.mode)  # seed: seg mode disables it


def perceptual_term(cfg, estimate: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    network = perceptual_network(cfg.model.spatial_dims, cfg.loss.perceptual_weights_path).to(x0.device)
    channels = [network(estimate[:, c:c + 1].float(), x0[:, c:c + 1].float()) for c in range(x0.shape[1])]
    return torch.stack(channels).mean()


def training_times(cfg, scheduler, x0: torch.Tensor, epoch: int) -> torch.Tensor:
    """The strategy's t, squeezed into the curriculum's range and jittered where configured."""
    r = cfg.regularisation
    t = sample_t(cfg.strategy.name, scheduler, x0)
    if r.curriculum:
        t = squeeze_into(t, *curriculum_range(epoch, r.curriculum_warmup_epochs, r.curriculum_start,
                                              r.curriculum_end))
    if r.timestep_jitter:
        t = jitter(t, r.jitter_std)
    return t


def self_conditioning(reference_pass, prediction, prob: float) -> torch.Tensor:
    """seed "Self-Conditioning via Consistency": with probability `prob` a second pass without
    gradient gives P1, and the term is MSE(prediction, P1); else 0. The two passes differ only by
    the forward pass's own randomness (feature perturbation), without which the term is 0.

    The second pass runs on the network itself, not its DDP wrapper: each worker draws whether to
    take it, and a DDP forward is a collective (it broadcasts the buffers) that a worker without
    the pass would never join."""
    if torch.rand(()) >= prob:
        return prediction.new_zeros((), dtype=torch.float32)
    with torch.no_grad():
        reference = reference_pass()
    return (prediction.float() - reference.float()).pow(2).mean()
