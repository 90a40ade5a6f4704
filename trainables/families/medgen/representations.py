"""The pixel-derived spaces medgen_diffusion can denoise in (seed 001 "Spaces"; LatentSpace is
trainables/families/medgen/latent_representation.py). Neither learns anything and both are exactly invertible:

- SpaceToDepthSpace (scale factor 2): every f x f (x f) block of pixels becomes f^d channels of one
  cell, so the network works at 1/f of the sides on f^d times the channels.
- WaveletSpace (scale factor 2): the orthonormal Haar transform, one level: each 2 x 2 x 2 block
  becomes its 8 subbands (4 in 2D), the first the block's scaled mean (LLL), the others its
  differences; each subband of each modality is then normalised to mean 0 and std 1 by the
  statistics of up to 64 training items (seed: "per-subband normalized"), since the detail bands
  of an MRI are near 0 and the low band carries nearly all of the signal.

The conditioning mask is moved into the space the same way (rearranged, or Haar-transformed
without the normalisation), so the network sees all of it at every cell.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from einops import rearrange
from losstune.data.medgen_dataset import constant_maps
from losstune.data.medgen_modes import embedded_channels
from losstune.trainables.families.medgen.items import make_items, subject_split
from losstune.trainables.families.medgen.latent_representation import space_of as latent_space_of

MEASURED_ITEMS = 64


def to_depth(x: torch.Tensor, factor: int) -> torch.Tensor:
    """[B, C, H, W(, D)] -> [B, C * factor^d, H / factor, W / factor(, D / factor)]; the factor^d
    offsets within a block are the fastest-varying channels."""
    if x.ndim == 4:
        return rearrange(x, "b c (h i) (w j) -> b (c i j) h w", i=factor, j=factor)
    return rearrange(x, "b c (h i) (w j) (d k) -> b (c i j k) h w d", i=factor, j=factor, k=factor)


def from_depth(z: torch.Tensor, factor: int) -> torch.Tensor:
    if z.ndim == 4:
        return rearrange(z, "b (c i j) h w -> b c (h i) (w j)", i=factor, j=factor)
    return rearrange(z, "b (c i j k) h w d -> b c (h i) (w j) (d k)", i=factor, j=factor, k=factor)


def haar_matrix(dims: int) -> torch.Tensor:
    """The orthonormal one-level Haar transform of a 2^dims block (rows: subbands, low band first):
    the Kronecker power of [[1, 1], [1, -1]] / sqrt(2). Orthonormal, so its inverse is its transpose."""
    pair = torch.tensor([[1.0, 1.0], [1.0, -1.0]]) / math.sqrt(2.0)
    matrix = pair
    for _ in range(dims - 1):
        matrix = torch.kron(matrix, pair)
    return matrix


def haar(x: torch.Tensor) -> torch.Tensor:
    """[B, C, *sides] -> [B, C * 2^d, *sides / 2]: each modality's subbands together, low band first."""
    blocks = to_depth(x, 2)  # [B, C * 2^d, ...], per modality its block's 2^d pixels
    matrix = haar_matrix(x.ndim - 2).to(x)
    grouped = blocks.unflatten(1, (x.shape[1], len(matrix)))  # [B, C, 2^d, ...]
    return torch.einsum("sp,bcp...->bcs...", matrix, grouped).flatten(1, 2)


def inverse_haar(z: torch.Tensor) -> torch.Tensor:
    dims = z.ndim - 2
    matrix = haar_matrix(dims).to(z)
    grouped = z.unflatten(1, (-1, len(matrix)))
    return from_depth(torch.einsum("sp,bcs...->bcp...", matrix, grouped).flatten(1, 2), 2)


class PixelSpace:
    """The images themselves (seed: PixelSpace, the default)."""

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def condition(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return cond


@dataclass
class SpaceToDepthSpace:
    factor: int = 2  # seed "Spaces": scale_factor 2

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return to_depth(images, self.factor)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return from_depth(z, self.factor)

    def condition(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return to_depth(cond, self.factor)


@dataclass
class WaveletSpace:
    mean: torch.Tensor  # [C * 2^d]: each subband's mean over the measured training items
    std: torch.Tensor

    @classmethod
    def measured(cls, images: torch.Tensor) -> "WaveletSpace":
        """Normalised by the subband statistics of `images` ([N, C, *sides], training items)."""
        bands = haar(images).transpose(0, 1).flatten(1)  # [C * 2^d, N * cells]
        std = bands.std(1)
        # a band that is constant over the training items (a blank margin's detail) stays as it is
        return cls(bands.mean(1), torch.where(std > 1e-8, std, torch.ones_like(std)))

    def shaped(self, stat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return stat.to(z).view(1, -1, *([1] * (z.ndim - 2)))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        bands = haar(images)
        return (bands - self.shaped(self.mean, bands)) / self.shaped(self.std, bands)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return inverse_haar(z * self.shaped(self.std, z) + self.shaped(self.mean, z))

    def condition(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return haar(cond) if cond.shape[1] else cond.new_zeros((len(cond), 0, *z.shape[2:]))


def measured_wavelet_space(cfg) -> WaveletSpace:
    """The wavelet space of the run's training items (up to MEASURED_ITEMS of them, spread evenly)."""
    subjects, _ = subject_split(cfg, cfg.data.mode)
    items = make_items(cfg, subjects, False, cfg.data.mode)
    picked = torch.linspace(0, len(items) - 1, steps=min(MEASURED_ITEMS, len(items))).round().long().tolist()
    return WaveletSpace.measured(torch.stack([items[k][0] for k in picked]))


@functools.lru_cache(maxsize=2)
def space_of(cfg):
    """The run's space (cached per process: every step encodes with it)."""
    name = cfg.representation.name
    if name == "latent":
        return latent_space_of(cfg)
    if name == "space_to_depth":
        return SpaceToDepthSpace(cfg.representation.factor)
    if name == "wavelet":
        return measured_wavelet_space(cfg)
    return PixelSpace()


def moved_condition(cfg, space, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The conditioning in the space of `z`: the mask moved as the space moves it, the embedded
    vectors' constant maps (size bins, modality) kept as constants at z's size, whatever the space
    would make of them (a rearrangement would spread them over channels)."""
    count = embedded_channels(cfg.data.mode)
    if not count:
        return space.condition(cond, z)
    vectors = cond[:, -count:].flatten(2).mean(2)
    moved = space.condition(cond[:, :-count], z)
    return torch.cat([moved, torch.stack([constant_maps(v, tuple(z.shape[2:])) for v in vectors])], 1)


def diffused(cfg, x0: torch.Tensor, cond: torch.Tensor) -> tuple:
    """What the network denoises and is conditioned on: the images and mask as they are in pixel
    space; else the space's encoding of the images and the mask moved to it (in latent space the
    frozen encoder's scaled latents and the mask pooled to their size)."""
    space = space_of(cfg)
    z0 = space.encode(x0)
    return z0, moved_condition(cfg, space, cond, z0)
