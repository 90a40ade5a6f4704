"""medgen's transformer denoisers (seed 001 "Model Architectures": DiT, HDiT, UViT), 2D and 3D, as
drop-in alternatives to the UNet of models/medgen.py: the same call (x = [x_t, conditioning
channels], timesteps, omega), the same `epoch` buffer and the same encoder / mid / decoder blocks
for feature perturbation.

- DiT (Peebles & Xie; the seed's SiT reference): patch tokens through blocks whose LayerNorms are
  modulated by the timestep (+ class) embedding, adaLN-Zero: every block's residual gates and the
  output layer start at 0, so the untrained network predicts 0.
- HDiT: the same blocks in a U: after each encoder level the tokens of every 2x2(x2) cell merge into
  one (a linear map of their concatenation), the decoder splits them back and adds the encoder's
  tokens of that level (concatenated, then mapped), so most blocks run on 1/4 (1/8 in 3D) of the
  tokens of the level above. `level_depths` (odd length) are the blocks per level, encoder first.
- UViT (Bao et al.): plain pre-LN ViT blocks without qkv bias; the timestep (and the class)
  enter as tokens in front of the patches, and each of the first depth // 2 blocks' output is a long
  skip into its mirror in the second half; a 3x3 convolution after unpatchifying smooths the patch
  edges.

Patches are MONAI's PatchEmbeddingBlock (a strided convolution and a learned position embedding;
its fixed sin-cos one would need the width to divide by 6 in 3D, which L = 1024 does not), and the
MLPs are MONAI's MLPBlock. The attention is written here because MONAI's SABlock has no QK
normalisation, which the seed turns on for DiT and HDiT ("QK-normalization for stability").
Conditioning by "concat" only: the mask is a channel of x, as for the UNet; the seed's
cross-attention option is not built. A vector given as constant maps in x's last `embedded`
channels (tumour-size bins, a one-hot modality) is embedded beside the timestep.
"""

from __future__ import annotations

import torch
from einops import rearrange
from monai.networks.blocks import PatchEmbeddingBlock
from torch import nn

from losstune.models.medgen import split_embedded
from losstune.models.medgen_transformer_blocks import DiTBlock, OutputLayer, ViTBlock, timestep_features


class Denoiser(nn.Module):
    """What the transformers share: patches in, the timestep (+ class) embedding, patches out."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, sides: tuple[int, ...], width: int,
                 heads: int, patch: int, omega_classes: int, embedded: int = 0):
        super().__init__()
        # the last `embedded` input channels are constant maps of a vector (the size bins; a one-hot mode),
        # embedded beside the timestep (DiT, HDiT: in the adaLN conditioning, the seed's FiLM; UViT: a token)
        self.embedded = embedded
        self.vector = nn.Sequential(nn.Linear(embedded, width), nn.SiLU(), nn.Linear(width, width)) if embedded else None
        self.spatial_dims, self.patch, self.out_channels = spatial_dims, patch, out_channels
        self.grid = tuple(side // patch for side in sides)
        self.patches = PatchEmbeddingBlock(in_channels, sides, patch, width, heads, proj_type="conv",
                                           pos_embed_type="learnable", spatial_dims=spatial_dims)
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.omega_classes = omega_classes
        self.classes = nn.Embedding(omega_classes, width) if omega_classes else None
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long))

    def embeddings(self, x: torch.Tensor, timesteps: torch.Tensor, omega: torch.Tensor | None) -> tuple:
        """(x without the embedded maps, [the timestep's embedding, the class's (ScoreAug's transform;
        class 0 where none is given), the embedded vector's], each [B, width] where the model has it)."""
        batch = len(x)
        found = [self.time(timestep_features(timesteps.expand(batch), self.time[0].in_features))]
        if self.classes is not None:
            omega = torch.zeros(batch, dtype=torch.long, device=x.device) if omega is None else omega
            found.append(self.classes(omega))
        if self.embedded:
            x, vector = split_embedded(x, self.embedded)
            found.append(self.vector(vector))
        return x, found

    def image(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, cells, patch^d * out_channels] -> [B, out_channels, *sides]."""
        p, grid = self.patch, self.grid
        if self.spatial_dims == 2:
            return rearrange(tokens, "b (h w) (i j c) -> b c (h i) (w j)", h=grid[0], w=grid[1], i=p, j=p)
        return rearrange(tokens, "b (h w d) (i j k c) -> b c (h i) (w j) (d k)", h=grid[0], w=grid[1], d=grid[2],
                         i=p, j=p, k=p)

    def feature_blocks(self) -> dict:
        """The blocks feature perturbation may add noise after: encoder half, middle, decoder half."""
        blocks = list(self.blocks)
        half = len(blocks) // 2
        return {"encoder": blocks[:half], "mid": blocks[half:half + 1], "decoder": blocks[half + 1:]}


class DiT(Denoiser):
    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, sides: tuple[int, ...], width: int = 768,
                 depth: int = 12, heads: int = 12, patch: int = 2, qk_norm: bool = True, omega_classes: int = 0,
                 embedded: int = 0):
        super().__init__(spatial_dims, in_channels, out_channels, sides, width, heads, patch, omega_classes, embedded)
        self.blocks = nn.ModuleList(DiTBlock(width, heads, qk_norm) for _ in range(depth))
        self.output = OutputLayer(width, patch ** spatial_dims * out_channels)

    def forward(self, x, timesteps, context=None, omega=None):
        x, found = self.embeddings(x, timesteps, omega)
        tokens, c = self.patches(x), sum(found)
        for block in self.blocks:
            tokens = block(tokens, c)
        return self.image(self.output(tokens, c))


class HDiT(Denoiser):
    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, sides: tuple[int, ...], width: int = 384,
                 level_depths: tuple[int, ...] = (2, 4, 6, 4, 2), heads: int = 6, patch: int = 4, qk_norm: bool = True,
                 omega_classes: int = 0, embedded: int = 0):
        super().__init__(spatial_dims, in_channels, out_channels, sides, width, heads, patch, omega_classes, embedded)
        self.levels = len(level_depths) // 2  # merges: one after each encoder level
        cell = 2 ** spatial_dims

        def level(depth):
            return nn.ModuleList(DiTBlock(width, heads, qk_norm) for _ in range(depth))

        self.encoder = nn.ModuleList(level(d) for d in level_depths[:self.levels])
        self.middle = level(level_depths[self.levels])
        self.decoder = nn.ModuleList(level(d) for d in level_depths[self.levels + 1:])
        self.merges = nn.ModuleList(nn.Linear(cell * width, width) for _ in range(self.levels))
        self.splits = nn.ModuleList(nn.Linear(width, cell * width) for _ in range(self.levels))
        self.skips = nn.ModuleList(nn.Linear(2 * width, width) for _ in range(self.levels))
        self.output = OutputLayer(width, patch ** spatial_dims * out_channels)

    def grid_at(self, level: int) -> tuple[int, ...]:
        return tuple(side // 2 ** level for side in self.grid)

    def merged(self, tokens: torch.Tensor, level: int) -> torch.Tensor:
        """Each 2x2(x2) cell of the level's token grid -> one token of the next."""
        grid = tokens.unflatten(1, self.grid_at(level))  # [B, h, w(, d), C]
        if self.spatial_dims == 2:
            cells = rearrange(grid, "b (h i) (w j) c -> b (h w) (i j c)", i=2, j=2)
        else:
            cells = rearrange(grid, "b (h i) (w j) (d k) c -> b (h w d) (i j k c)", i=2, j=2, k=2)
        return self.merges[level](cells)

    def split(self, tokens: torch.Tensor, level: int) -> torch.Tensor:
        """The inverse: each token of level + 1 -> the 2x2(x2) cell of the level's grid it came from."""
        cells = self.splits[level](tokens).unflatten(1, self.grid_at(level + 1))  # [B, h, w(, d), 2^d C]
        if self.spatial_dims == 2:
            grid = rearrange(cells, "b h w (i j c) -> b (h i) (w j) c", i=2, j=2)
        else:
            grid = rearrange(cells, "b h w d (i j k c) -> b (h i) (w j) (d k) c", i=2, j=2, k=2)
        return grid.flatten(1, -2)

    def forward(self, x, timesteps, context=None, omega=None):
        x, found = self.embeddings(x, timesteps, omega)
        tokens, c = self.patches(x), sum(found)
        skips = []
        for level, blocks in enumerate(self.encoder):
            for block in blocks:
                tokens = block(tokens, c)
            skips.append(tokens)
            tokens = self.merged(tokens, level)
        for block in self.middle:
            tokens = block(tokens, c)
        for step, blocks in enumerate(self.decoder):
            level = self.levels - 1 - step
            tokens = self.skips[level](torch.cat([self.split(tokens, level), skips.pop()], dim=-1))
            for block in blocks:
                tokens = block(tokens, c)
        return self.image(self.output(tokens, c))

    def feature_blocks(self) -> dict:
        return {"encoder": [b for level in self.encoder for b in level], "mid": list(self.middle),
                "decoder": [b for level in self.decoder for b in level]}


class UViT(Denoiser):
    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, sides: tuple[int, ...], width: int = 512,
                 depth: int = 13, heads: int = 8, patch: int = 8, qk_norm: bool = False, omega_classes: int = 0,
                 embedded: int = 0):
        super().__init__(spatial_dims, in_channels, out_channels, sides, width, heads, patch, omega_classes, embedded)
        self.extra_tokens = 1 + (omega_classes > 0) + (embedded > 0)  # the timestep's token, the class's, the vector's
        self.extra_position = nn.Parameter(torch.zeros(1, self.extra_tokens, width))
        self.blocks = nn.ModuleList(ViTBlock(width, heads, qk_norm) for _ in range(depth))
        self.skips = nn.ModuleList(nn.Linear(2 * width, width) for _ in range(depth // 2))
        self.norm = nn.LayerNorm(width)
        self.linear = nn.Linear(width, patch ** spatial_dims * out_channels)
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.smooth = conv(out_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, x, timesteps, context=None, omega=None):
        x, extra = self.embeddings(x, timesteps, omega)
        tokens = torch.cat([torch.stack(extra, 1) + self.extra_position, self.patches(x)], dim=1)
        half = len(self.blocks) // 2
        skips = []
        for block in self.blocks[:half]:
            tokens = block(tokens)
            skips.append(tokens)
        tokens = self.blocks[half](tokens)
        for block, skip in zip(self.blocks[half + 1:], self.skips):
            tokens = block(skip(torch.cat([tokens, skips.pop()], dim=-1)))
        patches = self.linear(self.norm(tokens))[:, self.extra_tokens:]
        return self.smooth(self.image(patches))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
