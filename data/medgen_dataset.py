"""MedGen's training items as a torch Dataset (Items, over MONAI's CacheDataset): each 2D slice
resized or 3D volume padded or cropped to the run's size, augmented per item (the diffusion
models' augmentation, or the compression models' aggressive one), with its voxel size and where
it lies in the world (item_affine) kept beside it. Built from data.medgen's volumes."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from losstune.losses.tumour_size import bin_counts


def augmentation(spatial_dims: int, size: tuple[int, ...], interpolation: dict):
    """The seed's conservative diffusion augmentation (seed "Diffusion Augmentation"): horizontal
    flip p=0.5, rotation +-10 degrees p=0.5, translation +-5% p=0.5; one draw for all the keys of
    `interpolation` (key -> "bilinear" or "nearest", the latter for masks)."""
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.transforms import Compose, RandAffined, RandFlipd, RandRotated

    keys, modes = tuple(interpolation), tuple(interpolation.values())
    angle = math.radians(10.0)
    # axial plane: (H, W) in 2D; rotation about the last (axial) axis in 3D
    rotation = {"range_x": angle} if spatial_dims == 2 else {"range_z": angle}
    translate = tuple(0.05 * s for s in size[:2]) + ((0.0,) if spatial_dims == 3 else ())
    return Compose([
        RandFlipd(keys, prob=0.5, spatial_axis=1),
        RandRotated(keys, prob=0.5, keep_size=True, mode=modes, padding_mode="zeros", **rotation),
        RandAffined(keys, prob=0.5, translate_range=translate, mode=modes, padding_mode="zeros"),
    ])


def vae_augmentation(spatial_dims: int, size: tuple[int, ...], interpolation: dict, images: tuple[str, ...]):
    """The seed's aggressive VAE augmentation (seed "VAE Augmentation (Aggressive)") in MONAI
    transforms: flip p=0.5, rotation +-15 degrees p=0.5, translation +-10% and scale 0.9-1.1 p=0.5;
    on the intensity `images` only (never a mask): Gaussian noise of std up to 0.05 p=0.3 (MONAI
    draws the std from [0, 0.05]; the seed's floor of 0.01 has no MONAI knob), blur of sigma
    0.5-1 (a 3-5 pixel kernel) p=0.2, brightness and contrast +-10% p=0.3 each; and an elastic
    deformation p=0.2 (control points an eighth of the side apart, moved up to 2 pixels: the
    seed's alpha=50 is Albumentations' scale, which MONAI does not share)."""
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.transforms import (Compose, Rand2DElasticd, Rand3DElasticd, RandAffined, RandFlipd,
                                  RandGaussianNoised, RandGaussianSmoothd, RandRotated, RandScaleIntensityd,
                                  RandShiftIntensityd)

    keys, modes = tuple(interpolation), tuple(interpolation.values())
    angle = math.radians(15.0)
    rotation = {"range_x": angle} if spatial_dims == 2 else {"range_z": angle}
    translate = tuple(0.1 * s for s in size[:2]) + ((0.0,) if spatial_dims == 3 else ())
    steps = [
        RandFlipd(keys, prob=0.5, spatial_axis=1),
        RandRotated(keys, prob=0.5, keep_size=True, mode=modes, padding_mode="zeros", **rotation),
        RandAffined(keys, prob=0.5, translate_range=translate, scale_range=(0.1,) * spatial_dims, mode=modes,
                    padding_mode="zeros"),
    ]
    if images:
        steps += [RandGaussianNoised(images, prob=0.3, std=0.05, sample_std=True),
                  RandGaussianSmoothd(images, prob=0.2, sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0)),
                  RandShiftIntensityd(images, prob=0.3, offsets=0.1),
                  RandScaleIntensityd(images, prob=0.3, factors=0.1)]
    spacing = tuple(max(2, s // 8) for s in size)
    if spatial_dims == 2:
        steps.append(Rand2DElasticd(keys, prob=0.2, spacing=spacing, magnitude_range=(0.0, 2.0), mode=modes,
                                    padding_mode="zeros"))
    else:
        steps.append(Rand3DElasticd(keys, prob=0.2, sigma_range=(4.0, 6.0), magnitude_range=(0.0, 2.0), mode=modes,
                                    padding_mode="zeros"))
    return Compose(steps)


def item_spacing(item: dict, spatial_dims: int, size: tuple[int, ...]) -> torch.Tensor:
    """The item's voxel size in mm after Items' resize (2D) or pad / crop (3D); 1 mm where the data
    carries none."""
    spacing = np.asarray(item.get("spacing", np.ones(3)), dtype=np.float64)[:spatial_dims]
    if spatial_dims == 2:
        spacing = spacing * np.asarray(item["seg"].shape[1:3]) / np.asarray(size)
    return torch.tensor(spacing, dtype=torch.float32)


def item_affine(volume_affine: np.ndarray, shape: tuple, slice_index, size: tuple) -> np.ndarray:
    """The world affine of an item of `shape` as read, after Items' resize (2D: axial slice
    `slice_index` of a volume with `volume_affine`) or pad / crop (3D), to `size`: MONAI's own
    record of the transform (a MetaTensor's affine), so its half-voxel and centring conventions hold."""
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.data import MetaTensor
    from monai.transforms import Resize, ResizeWithPadOrCrop

    if slice_index is None:  # a volume
        moved = ResizeWithPadOrCrop(size)(MetaTensor(torch.zeros(1, *shape, dtype=torch.uint8), affine=torch.eye(4)))
        return volume_affine @ moved.affine.double().numpy()
    in_plane = Resize(size, mode="nearest")(MetaTensor(torch.zeros(1, *shape), affine=torch.eye(3))).affine.double().numpy()
    step = np.eye(4)
    step[:2, :2], step[:2, 3], step[2, 3] = in_plane[:2, :2], in_plane[:2, 2], slice_index
    return volume_affine @ step


class Items:
    """A torch Dataset of (target images, conditioning, seg) tensors over MONAI's CacheDataset:
    the deterministic resize (2D) or crop/pad (3D) is cached once, augmentation runs per item.
    A mode without conditioning (seg) gets a zero-channel conditioning tensor."""

    def __init__(self, items: list[dict], spatial_dims: int, size: tuple[int, ...], augment: bool,
                 binary_images: bool = False, seed: int = 0, aggressive: bool = False, with_spacing: bool = False,
                 size_bins: str = "", modalities: int = 0):
        # here, not at the top: loads torch, optuna, monai and more only where this runs
        from monai.data import CacheDataset
        from monai.transforms import Compose, EnsureTyped, ResizeWithPadOrCropd, Resized

        self.has_cond = bool(items) and len(items[0]["cond"]) > 0
        self.empty_cond_shape = (0, *size)
        # "counts" / "binary": the conditioning is one constant map per size bin of the item's tumours,
        # measured once on the item as read (at its own voxel size; augmentation does not move a size)
        self.size_bins = [self.bin_vector(item, spatial_dims, size_bins) for item in items] if size_bins else None
        # multi: each item's modality (an index of the pooled items' "modality"), one-hot after the mask
        self.modality = [F.one_hot(torch.tensor(item["modality"]), modalities).float() for item in items] \
            if modalities else None
        # each item's voxel size in mm at `size` (a 2D slice resized to it; a volume padded or cropped)
        self.spacings = [item_spacing(item, spatial_dims, size) for item in items]
        # where each item came from (subject, slice, affine, shape as read), for item_source
        self.origins = [{"subject": item.get("subject", ""), "slice": item.get("slice"), "affine": item.get("affine"),
                         "shape": item["seg"].shape[1:]} for item in items]
        self.size = size  # what each item is resized, padded or cropped to (source)
        self.with_spacing = with_spacing  # each item also gives its voxel size (the tumour-size metrics)
        interpolation = {"image": "nearest" if binary_images else "bilinear", "seg": "nearest"}
        if self.has_cond:
            interpolation["cond"] = "nearest"  # the conditioning channel is the seg mask
        keys = tuple(interpolation)
        items = [{k: item[k] for k in keys} for item in items]
        if spatial_dims == 2:
            shape = Resized(keys, spatial_size=size, mode=tuple(interpolation.values()))
        else:
            shape = ResizeWithPadOrCropd(keys, spatial_size=size)
        steps = [shape, EnsureTyped(keys, track_meta=False)]
        if augment and aggressive:  # the compression models' augmentation
            images = () if binary_images else ("image",)
            steps += [vae_augmentation(spatial_dims, size, interpolation, images), EnsureTyped(keys, track_meta=False)]
        elif augment:
            steps += [augmentation(spatial_dims, size, interpolation), EnsureTyped(keys, track_meta=False)]
        self.cache = CacheDataset(items, Compose(steps), progress=False, num_workers=0)
        # MONAI's random transforms draw from RandomStates of their own, which torch seeding does
        # not reach: seeded here, a trial's augmentation follows train.seed.
        self.cache.transform.set_random_state(seed=seed)
        self._worker_seed = None

    def __len__(self):
        return len(self.cache)

    def source(self, index: int) -> dict:
        """Where item `index` came from: its subject, its axial slice (2D) and the voxel-to-world
        affine of the item as the network sees it (after the resize or pad / crop)."""
        origin = self.origins[index]
        affine = np.eye(4) if origin["affine"] is None else np.asarray(origin["affine"], dtype=np.float64)
        return {"subject": origin["subject"], "slice": origin["slice"],
                "affine": item_affine(affine, origin["shape"], origin["slice"], self.size).tolist()}

    @staticmethod
    def bin_vector(item: dict, spatial_dims: int, kind: str) -> torch.Tensor:
        spacing = np.asarray(item.get("spacing", np.ones(3)), dtype=np.float64)[:spatial_dims]
        counts = torch.from_numpy(bin_counts(item["seg"][0] > 0.5, spacing))
        return (counts > 0).float() if kind == "binary" else counts

    def __getitem__(self, index):
        self._reseed_in_worker()
        item = self.cache[index]
        cond = item["cond"] if self.has_cond else torch.zeros(self.empty_cond_shape)
        for vectors in (self.size_bins, self.modality):
            if vectors is not None:
                cond = torch.cat([cond, constant_maps(vectors[index], self.empty_cond_shape[1:])])
        tensors = (item["image"].float(), cond.float(), item["seg"].float())
        return (*tensors, self.spacings[index]) if self.with_spacing else tensors

    def _reseed_in_worker(self) -> None:
        """DataLoader workers (train.num_data_workers) each start from a copy of those states, so
        every worker of every epoch would replay the same draws; torch gives each worker of each
        epoch a seed of its own (from the loader's generator), and this reseeds from it, as
        monai.data.DataLoader does."""
        info = torch.utils.data.get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self.cache.transform.set_random_state(seed=info.seed % 2**32)
            self._worker_seed = info.seed


def constant_maps(vector: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """[len(vector), *size]: each entry of the vector as a map of its own."""
    return vector.view(-1, *([1] * len(size))).expand(len(vector), *size)
