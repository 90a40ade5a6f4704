"""medgen_diffusion's validation and generation settings: the fixed validation draw, and sampling
images from noise to judge them by KID, CMMD and LPIPS (trainables/families/medgen/generation.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from losstune.trainables.config import ConfigError, at_least

@dataclass(frozen=True)
class EvalConfig:
    seed: int = 12345  # the fixed validation timesteps and noise, the same for every trial
    msssim: bool = True
    # seed logging.lpips (true): LPIPS needs an ImageNet AlexNet, a local torchvision-layout state dict
    # (nothing is downloaded); "" = not computed. 2D images only, as in the seed.
    lpips_weights: str = ""

    def __post_init__(self):
        at_least("seed", self.seed, 0)


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling images from noise with the trained network, and judging the samples (seed
    "Generation Quality Metrics"; trainables/families/medgen/generation.py). `metrics` generates
    `samples` images at every validation (train.val_every) and reports their KID against the
    training and the validation images (ResNet-50 features from `resnet_weights`) and, where
    `clip_dir` is given, their CMMD (CLIP embeddings). Both weights are local files: nothing is
    downloaded. `objective` "kid" ranks runs by KID against the validation images instead of the
    one-step MSE."""

    num_steps: int = 25  # seed "generation_num_steps: 25": Euler steps (RFlow) or denoising steps (DDPM)
    seed: int = 0  # not in the seed: the generated samples' noise, the same for every trial
    metrics: bool = False  # seed generation_metrics.enabled (it needs the extractors' weights)
    samples: int = 100  # seed "Full-batch rounding: 100 samples"
    kid_subsets: int = 100  # torchmetrics' KID default
    kid_subset_size: int = 50  # not in the seed: half the samples (subsets of all of them would all be the same)
    resnet_weights: str = ""  # a torchvision-layout ResNet-50 state dict (ImageNet or RadImageNet)
    clip_dir: str = ""  # a transformers CLIP vision model folder (BiomedCLIP converted); "" = no CMMD
    objective: Literal["mse", "kid"] = "mse"  # not in the seed, which logs KID and ranks by neither
    # seed "Overfitting Detection": KID_train falling while KID_val rises, for this many validations
    # in a row, is reported as health/kid_overfit_evals; with stop_on_overfit it stops the run
    patience: int = 3  # not in the seed (it names the signal, not a count)
    stop_on_overfit: bool = False  # not in the seed: reported only, unless asked
    # seed Generation/extended_* "at figure_interval": named there, not defined; here the same metrics
    # of `extended_samples` samples (a steadier estimate) every `extended_every` epochs; 0 = off
    extended_every: int = 0  # not in the seed (its figure_interval)
    extended_samples: int = 400  # not in the seed

    def __post_init__(self):
        at_least("num_steps", self.num_steps, 1)
        at_least("seed", self.seed, 0)
        at_least("samples", self.samples, 4)
        at_least("kid_subsets", self.kid_subsets, 1)
        at_least("kid_subset_size", self.kid_subset_size, 2)
        at_least("patience", self.patience, 1)
        at_least("extended_every", self.extended_every, 0)
        at_least("extended_samples", self.extended_samples, self.kid_subset_size)
        if self.kid_subset_size > self.samples:
            raise ConfigError("kid_subset_size", f"{self.kid_subset_size} is more than the {self.samples} samples")
        if self.objective == "kid" and not self.metrics:
            raise ConfigError("objective", "kid needs generation.metrics=true (and generation.resnet_weights)")
        if self.metrics and not self.resnet_weights:
            raise ConfigError("resnet_weights", "is not set: generation.metrics needs a local ResNet-50 weights "
                                                "file (torchvision layout); nothing is downloaded")
        if self.resnet_weights and not os.path.isfile(self.resnet_weights):
            raise ConfigError("resnet_weights", f"{self.resnet_weights}: no such file")
        if self.clip_dir and not os.path.isdir(self.clip_dir):
            raise ConfigError("clip_dir", f"{self.clip_dir}: no such folder")
