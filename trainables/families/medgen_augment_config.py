"""medgen_diffusion's ScoreAug and SDA settings (seed 001 "Score Augmentation", "Config Options";
"Shifted Data Augmentation"), each off by default, with the seed's values."""

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
    """Transforms of the noisy input and the target alike (trainables/families/medgen_augment.py):
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
