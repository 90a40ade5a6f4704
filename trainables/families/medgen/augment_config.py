"""medgen_diffusion's regularisers: ScoreAug and SDA (seed 001 "Score Augmentation", "Config Options";
"Shifted Data Augmentation") and the clean regularisers ("Clean Regularization Techniques"), each off
by default, with the seed's values."""

from __future__ import annotations

from dataclasses import dataclass, field

from losstune.trainables.config import ConfigError, at_least, within


@dataclass(frozen=True)
class PatternsConfig:
    checkerboard: bool = True
    grid_dropout: bool = True
    coarse_dropout: bool = True
    patch_dropout: bool = True


@dataclass(frozen=True)
class ScoreAugConfig:
    """Transforms of the noisy input and the target alike (trainables/families/medgen/augment.py):
    one per sample (single), each with compose_prob (compose), or v2's non-destructive stack plus
    one destructive transform."""

    enabled: bool = False
    rotation: bool = True  # 90, 180, 270 degrees
    flip: bool = True  # horizontal / vertical
    translation: bool = False  # +-40% X, +-20% Y, zero padding
    cutout: bool = False  # a random square of 10-30% of the side
    compose: bool = False
    compose_prob: float = 0.5
    v2_mode: bool = False
    nondestructive_prob: float = 0.5
    destructive_prob: float = 0.5
    cutout_vs_pattern: float = 0.5
    patterns: PatternsConfig = field(default_factory=PatternsConfig)
    use_omega_conditioning: bool = True  # seed: "Always use with ScoreAug"

    def __post_init__(self):
        for name in ("compose_prob", "nondestructive_prob", "destructive_prob", "cutout_vs_pattern"):
            within(name, getattr(self, name), 0.0, 1.0)
        if self.enabled and not (self.rotation or self.flip or self.translation or self.cutout or self.v2_mode):
            raise ConfigError("enabled", "ScoreAug needs at least one of rotation, flip, translation, cutout")
        if self.compose and self.v2_mode:
            raise ConfigError("v2_mode", "is one mode and compose another: choose one")


@dataclass(frozen=True)
class SDAConfig:
    """The clean image transformed and noised at a later time, trained beside the plain path."""

    enabled: bool = False
    rotation: bool = True
    flip: bool = True
    noise_shift: float = 0.1  # seed: "0.05-0.2 typical"; in normalised time t
    prob: float = 0.5
    weight: float = 1.0

    def __post_init__(self):
        within("noise_shift", self.noise_shift, 0.0, 1.0)
        within("prob", self.prob, 0.0, 1.0)
        at_least("weight", self.weight, 0.0)
        if self.enabled and not (self.rotation or self.flip):
            raise ConfigError("enabled", "SDA needs rotation or flip")


@dataclass(frozen=True)
class RegularisationConfig:
    """seed "Clean Regularization Techniques", each off by default, with the seed's parameters
    (IDUN experiments 21-25)."""

    curriculum: bool = False
    curriculum_warmup_epochs: int = 50
    curriculum_start: tuple[float, ...] = (0.0, 0.3)  # (min t, max t) at epoch 0
    curriculum_end: tuple[float, ...] = (0.0, 1.0)  # ... after the warmup epochs
    timestep_jitter: bool = False
    jitter_std: float = 0.05
    noise_augmentation: bool = False
    noise_augmentation_std: float = 0.1
    feature_perturbation: bool = False
    feature_std: float = 0.1
    feature_layers: tuple[str, ...] = ("mid",)  # of "encoder", "mid", "decoder"
    self_conditioning: bool = False
    self_conditioning_prob: float = 0.5
    self_conditioning_weight: float = 0.1

    def __post_init__(self):
        at_least("curriculum_warmup_epochs", self.curriculum_warmup_epochs, 0)
        for name in ("curriculum_start", "curriculum_end"):
            bounds = getattr(self, name)
            if len(bounds) != 2 or not 0.0 <= bounds[0] < bounds[1] <= 1.0:
                raise ConfigError(name, f"must be [min t, max t] with 0 <= min < max <= 1, got {list(bounds)}")
        at_least("jitter_std", self.jitter_std, 0.0)
        at_least("noise_augmentation_std", self.noise_augmentation_std, 0.0)
        at_least("feature_std", self.feature_std, 0.0)
        unknown = set(self.feature_layers) - {"encoder", "mid", "decoder"}
        if unknown or not self.feature_layers:
            raise ConfigError("feature_layers",
                              f"must be some of encoder, mid, decoder, got {list(self.feature_layers)}")
        within("self_conditioning_prob", self.self_conditioning_prob, 0.0, 1.0)
        at_least("self_conditioning_weight", self.self_conditioning_weight, 0.0)
