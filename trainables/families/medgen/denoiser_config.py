"""medgen_diffusion's denoiser settings: the seed's UNet, or a DiT, HDiT or UViT of its documented
variants (the networks: models/medgen.py, models/medgen_transformers.py). Here, not beside the models,
so that checking a config needs no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from losstune.trainables.config import ConfigError, at_least
from losstune.trainables.engine.loop_config import check_unet_sizes, unet_misfit

# seed "Model Architectures": each transformer's documented variant and patch size (model/dit.yaml
# variant B patch 2, hdit_3d.yaml S patch 4, uvit_3d.yaml S patch 8)
TRANSFORMER_DEFAULTS = {"dit": ("B", 2), "hdit": ("S", 4), "uvit": ("S", 8)}
# ... and (width, depth, heads) per variant. HDiT shares DiT's widths and heads, its depth is
# `level_depths`; UViT's depth is odd (encoder half, one middle block, decoder half). Here, not beside
# the models, so that checking a config needs no torch
VARIANTS = {
    "dit": {"S": (384, 12, 6), "B": (768, 12, 12), "L": (1024, 24, 16), "XL": (1152, 28, 16)},
    "hdit": {"S": (384, 0, 6), "B": (768, 0, 12), "L": (1024, 0, 16), "XL": (1152, 0, 16)},
    "uvit": {"S": (512, 13, 8), "S-Deep": (512, 17, 8), "M": (768, 17, 12), "L": (1024, 21, 16)},
}


@dataclass(frozen=True)
class ModelConfig:
    """seed "Model Architectures": the UNet (the default) with channels [128, 256, 256], attention
    [false, true, true], num_res_blocks 1, the head size MONAI's default (the seed names none); or a
    transformer, DiT, HDiT or UViT (models/medgen_transformers.py), of the seed's variants and patch
    sizes. `width`, `depth`, `heads` (0: the variant's) size a transformer outside the seed's table;
    an `architecture` sweep sets `width` to match the UNet's parameter count."""

    kind: Literal["unet", "dit", "hdit", "uvit"] = "unet"  # seed model.type: unet is the default
    spatial_dims: int = 2
    widths: tuple[int, ...] = (128, 256, 256)
    attention: tuple[bool, ...] = (False, True, True)
    res_blocks: int = 1
    norm_groups: int = 32
    head_channels: int = 8
    # Not in the seed: MONAI's use_flash_attention (torch's scaled_dot_product_attention), the same
    # attention without its full matrix, which at the seed's size (batch 16, 256 / 8 = 32 heads over
    # 64x64 = 4096 positions) is 16 x 32 x 4096^2 floats = 34 GB in one layer: off, a default trial
    # could not train on a 24 GiB machine (benchmarks/memory.py).
    flash_attention: bool = True
    variant: str = ""  # transformers: "" = the seed's per kind (TRANSFORMER_DEFAULTS)
    patch_size: int = 0  # transformers: 0 = the seed's per kind; seed "1, 2, 4, or 8"
    width: int = 0  # transformers: 0 = the variant's
    depth: int = 0  # dit, uvit: 0 = the variant's
    heads: int = 0  # 0 = the variant's
    level_depths: tuple[int, ...] = (2, 4, 6, 4, 2)  # hdit: seed "Blocks per level (must be odd-length)"
    qk_norm: bool = True  # dit, hdit: seed "qk_norm: true"
    uvit_qk_norm: bool = False  # uvit: seed "qk_norm: false  # Paper default"

    def __post_init__(self):
        if self.spatial_dims not in (2, 3):
            raise ConfigError("spatial_dims", f"must be 2 or 3, got {self.spatial_dims}")
        check_unet_sizes(self)
        if self.kind == "unet":
            return
        if self.variant and self.variant not in VARIANTS[self.kind]:
            raise ConfigError("variant", f"{self.variant!r} is not a {self.kind} variant (seed: "
                                         f"{', '.join(VARIANTS[self.kind])})")
        if self.patch_size not in (0, 1, 2, 4, 8):
            raise ConfigError("patch_size", f"must be 1, 2, 4 or 8 (seed), got {self.patch_size}")
        for name in ("width", "depth", "heads"):
            at_least(name, getattr(self, name), 0)
        if self.kind == "uvit" and self.transformer_size()[1] % 2 == 0:
            raise ConfigError("depth", f"must be odd for uvit (encoder half, one middle block, decoder half), "
                                       f"got {self.transformer_size()[1]}")
        if self.kind == "hdit" and (len(self.level_depths) % 2 == 0 or min(self.level_depths) < 1):
            raise ConfigError("level_depths", f"must be an odd number of depths of at least 1 (seed), "
                                              f"got {list(self.level_depths)}")
        width, _, heads = self.transformer_size()
        if width % heads or (width // heads) % 2:
            raise ConfigError("width", f"{width} must split into {heads} heads of an even size")

    def transformer_size(self) -> tuple[int, int, int]:
        """(width, depth, heads): the variant's, each replaced where set."""
        variant = self.variant or TRANSFORMER_DEFAULTS[self.kind][0]
        width, depth, heads = VARIANTS[self.kind][variant]
        return self.width or width, self.depth or depth, self.heads or heads

    @property
    def patch(self) -> int:
        return self.patch_size or TRANSFORMER_DEFAULTS[self.kind][1]

    def misfit(self, sides) -> str:
        """Why this network cannot take inputs of these sides ("" where it can)."""
        if self.kind == "unet":
            return unet_misfit(sides, self.widths, "model.widths")
        step = self.patch * (2 ** (len(self.level_depths) // 2) if self.kind == "hdit" else 1)
        if all(side % step == 0 for side in sides):
            return ""
        merges = f" and its {len(self.level_depths) // 2} token merges" if self.kind == "hdit" else ""
        return f"do not fit model.patch_size {self.patch}{merges} of the {self.kind}: every side must be a multiple of {step}"
