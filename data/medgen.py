"""MedGen data (seed 001): brain-MRI subjects as NIfTI files, read into 2D slices or 3D volumes.

A data folder holds one folder per subject, each with one file per modality: `bravo`, `flair`,
`t1_pre`, `t1_gd` and `seg` (the tumour mask), as `.nii` or `.nii.gz`. Image volumes are
normalised to [0, 1] between their 0.5th and 99.5th intensity percentiles; seg is binarised.
Every volume is turned to RAS by its NIfTI affine (MONAI's Orientation), so that its last axis is
the axial one whatever the file's storage order (sagittal, LPS, ...); a subject's files must share
their affine and shape. 2D takes the axial slices, optionally without the empty ones, resized to
`image_size`; 3D crops or pads each volume to the configured shape.

Files are read and checked once, before Ray starts (the family's check_data), and what was read
is cached on this machine's disk (keyed by each file's path, size and modification time), so the
trials that build on it do not read the NIfTI files again; MONAI's CacheDataset keeps the
deterministic transforms' output, so only the random augmentation runs per epoch.

The synthetic default writes brain-like phantoms (skull, grey and white matter, ventricles and one
or two ellipsoid tumours, with per-modality contrasts, a bias field and noise) as NIfTI files, so
the demo and the tests run the same reader as real data.

Shared by the medgen families: diffusion, and compression (with the seed's aggressive VAE augmentation).
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from losstune.data import DataError

# seed "Diffusion Modes": the images a mode generates, and the channels it is conditioned on;
# multi_modality (seed "VAE Modes", compression only) reads all four images, pooled one at a time
IMAGES = ("bravo", "flair", "t1_pre", "t1_gd")
MODE_IMAGES = {"seg": ("seg",), "bravo": ("bravo",), "bravo_seg_cond": ("bravo",), "dual": ("t1_pre", "t1_gd"),
               "multi": IMAGES,
               "seg_conditioned": ("seg",),
               "seg_conditioned_3d": ("seg",), "seg_conditioned_input": ("seg",), "multi_modality": IMAGES}
MODE_CONDITIONING = {"seg": (), "bravo": ("seg",), "bravo_seg_cond": ("seg",), "dual": ("seg",), "multi": ("seg",),
                     "seg_conditioned": (),
                     "seg_conditioned_3d": (),
                     "seg_conditioned_input": (), "multi_modality": ()}
# seed "Diffusion Modes": masks generated conditioned on the tumours' size bins (losses.tumour_size
# CONDITIONING_BINS), as a vector the network embeds (FiLM) or as binary maps beside the mask
# ("1 + 7 bin maps"). The data gives both as one map per bin (Items' `size_bins`): the count of the
# item's tumours in that bin, or whether it has one.
SIZE_CONDITIONED = {"seg_conditioned": "counts", "seg_conditioned_3d": "counts", "seg_conditioned_input": "binary"}
# seed "Diffusion Modes": multi, [image, seg] + mode embedding: every modality of MODE_IMAGES["multi"]
# an item of its own, its modality given as one-hot constant maps after the mask (Items' `modalities`)
PERCENTILES = (0.5, 99.5)  # not in the seed: robust to a few hot voxels
EMPTY_SLICE_LEVEL = 0.05  # a 2D slice is empty if no image voxel exceeds this (normalised) level
ORIENTATION = "RAS"  # every volume is turned to this: its last axis runs inferior -> superior (axial)
# A subject's files must agree on their voxel-to-world affine to this (mm; unitless for the
# direction cosines): rounding between tools passes, a misregistered mask does not.
AFFINE_TOLERANCE = 1e-2
CACHE_VERSION = "v5"  # bump when what load_subject returns changes (v4: spacing; v5: affine)
# A volume's facts, shared by each of its slices: voxel size, voxel-to-world affine (both of the
# RAS-oriented array), subject
VOLUME_FACTS = ("spacing", "affine", "subject")

# Phantom tissue intensities (arbitrary scanner units / 1000) per modality: background, skull,
# grey matter, white matter, CSF, tumour. T1 post-contrast (bravo, t1_gd) makes the tumour bright.
_TISSUES = {
    "bravo": (0.0, 0.30, 0.55, 0.75, 0.15, 0.95),
    "flair": (0.0, 0.25, 0.60, 0.50, 0.10, 0.90),
    "t1_pre": (0.0, 0.30, 0.60, 0.80, 0.20, 0.50),
    "t1_gd": (0.0, 0.30, 0.60, 0.80, 0.20, 1.00),
}


@dataclass(frozen=True)
class Subject:
    name: str
    files: dict  # modality -> path


def mode_channels(mode: str) -> tuple[int, int]:
    """(in_channels, out_channels) of a mode's network, the seed's channel table: seg 1->1,
    bravo 2->1, dual 3->2 (the images it generates, plus what it is conditioned on)."""
    images = 1 if mode == "multi" else len(MODE_IMAGES[mode])  # multi: one modality at a time
    return images + len(MODE_CONDITIONING[mode]) + vector_channels(mode), images


def vector_channels(mode: str) -> int:
    """How many constant maps of a vector follow a mode's masks in its conditioning: the size bins
    (seg_conditioned*), the one-hot modality (multi)."""
    from losstune.losses.tumour_size import CONDITIONING_BINS

    if mode == "multi":
        return len(MODE_IMAGES[mode])
    return CONDITIONING_BINS if mode in SIZE_CONDITIONED else 0


def embedded_channels(mode: str) -> int:
    """How many of those the network embeds rather than convolves: all but seg_conditioned_input's
    binary maps, which the seed gives beside the mask as input channels."""
    return 0 if SIZE_CONDITIONED.get(mode) == "binary" else vector_channels(mode)


def binary_mode(mode: str) -> bool:
    """Whether the mode's images are masks (no empty-slice skipping, nearest interpolation, no
    perceptual loss)."""
    return MODE_IMAGES[mode] == ("seg",)


def modalities_for(mode: str) -> tuple[str, ...]:
    """The files a mode reads: its images, its conditioning, and seg (for the regional metrics)."""
    return tuple(dict.fromkeys(MODE_IMAGES[mode] + MODE_CONDITIONING[mode] + ("seg",)))


# --- finding and checking files ------------------------------------------------------------------

def list_subjects(directory: str, modalities: tuple[str, ...]) -> list[Subject]:
    """Every subject folder of `directory`, with the path of each needed modality. Hidden folders
    (.git, .ipynb_checkpoints, ...) are no subjects; files beside the folders (a BIDS
    participants.tsv, a README) are left alone."""
    root = Path(directory)
    if not root.is_dir():
        raise DataError(f"{directory}: no such directory (data.path)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{directory}: no subject folders in it (data.path)")
    subjects = []
    for folder in folders:
        files = {}
        for modality in modalities:
            found = [path for path in (folder / f"{modality}.nii.gz", folder / f"{modality}.nii") if path.is_file()]
            if not found:
                raise DataError(f"{folder}: subject {folder.name} has no {modality}.nii or {modality}.nii.gz")
            files[modality] = str(found[0])
        subjects.append(Subject(folder.name, files))
    return subjects


def check_headers(subjects: list[Subject]) -> None:
    """Read every file's header (not its voxels): readable, 3D, and each file of a subject on its
    first image's grid (shape and affine)."""
    for subject in subjects:
        headers = {modality: header(path, subject.name) for modality, path in subject.files.items()}
        reference = next(m for m in headers if m != "seg") if len(headers) > 1 else None
        for modality, (shape, affine) in headers.items():
            if reference is None or modality == reference:
                continue
            ref_shape, ref_affine = headers[reference]
            what = "seg" if modality == "seg" else modality
            if shape != ref_shape:
                raise DataError(f"{subject.files[modality]}: subject {subject.name}'s {what} has shape {shape}, "
                                f"its {reference} {ref_shape} ({subject.files[reference]})")
            if not np.allclose(affine, ref_affine, atol=AFFINE_TOLERANCE):
                shift = float(np.abs(affine[:3, 3] - ref_affine[:3, 3]).max())
                raise DataError(f"{subject.files[modality]}: subject {subject.name}'s {what} is not on its "
                                f"{reference}'s grid (affines differ; origin by up to {shift:.3g} mm) "
                                f"({subject.files[reference]})")


def header(path: str, subject: str) -> tuple[tuple[int, ...], np.ndarray]:
    """(shape, voxel-to-world affine) from a file's header."""
    import nibabel

    try:
        image = nibabel.load(path)
        shape = tuple(int(s) for s in image.shape)
        affine = np.asarray(image.affine, dtype=np.float64)
    except Exception as err:  # nibabel raises several types for a corrupt or foreign file
        raise DataError(f"{path}: subject {subject}: cannot read it as NIfTI ({type(err).__name__}: {err})") from err
    if len(shape) == 4 and shape[3] == 1:  # [H, W, D, 1], as some tools save a volume: one channel
        shape = shape[:3]
    if len(shape) != 3:
        raise DataError(f"{path}: subject {subject}: expected a 3D volume, got shape {shape}")
    return shape, affine


def read_volume(path: str, subject: str) -> np.ndarray:
    """The voxels of one file as float32 [H, W, D] in RAS orientation, through MONAI's LoadImage
    (nibabel reader) and Orientation; `check_headers` has already given the clear error for an
    unreadable header."""
    from monai.transforms import LoadImage, Orientation

    try:
        volume = LoadImage(reader="NibabelReader", image_only=True, dtype=np.float32, ensure_channel_first=True)(path)
        volume = np.asarray(Orientation(axcodes=ORIENTATION, labels=None)(volume))[0]
    except Exception as err:
        raise DataError(f"{path}: subject {subject}: cannot read its voxels ({type(err).__name__}: {err})") from err
    bad = int((~np.isfinite(volume)).sum())
    if bad:
        raise DataError(f"{path}: subject {subject}: {bad} non-finite voxels")
    return np.ascontiguousarray(volume)


# --- volumes -> training items -------------------------------------------------------------------

def load_volumes(subjects: list[Subject], mode: str) -> list[dict]:
    """One dict per subject: "image" [n_images, H, W, D], "cond" [n_cond, ...], "seg" [1, ...],
    images normalised to [0, 1] per volume and modality, seg binarised; from this machine's cache
    where the files were read before."""
    check_headers(subjects)
    return [{**cached(subject, mode), "subject": subject.name} for subject in subjects]


def load_subject(subject: Subject, mode: str) -> dict:
    volumes = {}
    for modality, path in subject.files.items():
        volume = read_volume(path, subject.name)
        volumes[modality] = (volume > 0.5).astype(np.float32) if modality == "seg" else \
            normalised(volume, path, subject.name, modality)
    return {"image": np.stack([volumes[m] for m in MODE_IMAGES[mode]]),
            "cond": np.stack([volumes[m] for m in MODE_CONDITIONING[mode]]) if MODE_CONDITIONING[mode]
            else np.zeros((0, *volumes["seg"].shape), np.float32),
            "seg": volumes["seg"][None], "spacing": ras_spacing(subject.files["seg"]),
            "affine": ras_affine(subject.files["seg"])}


def ras_affine(path: str) -> np.ndarray:
    """The voxel-to-world affine of the RAS-oriented array (read_volume's), from the header: the
    file's affine composed with the axis flips and swaps that orient it (as nibabel's as_reoriented)."""
    import nibabel

    image = nibabel.load(path)
    orientation = nibabel.orientations.io_orientation(image.affine)
    return image.affine @ nibabel.orientations.inv_ornt_aff(orientation, image.shape[:3])


def ras_spacing(path: str) -> np.ndarray:
    """The voxel size in mm along the RAS-oriented volume's axes (H, W, D), from the header."""
    import nibabel

    image = nibabel.load(path)
    zooms = np.asarray(image.header.get_zooms()[:3], dtype=np.float32)
    spacing = np.empty(3, np.float32)
    for axis, (target, _) in enumerate(nibabel.orientations.io_orientation(image.affine)):
        spacing[int(target)] = zooms[axis]
    return spacing


def normalised(volume: np.ndarray, path: str, subject: str, modality: str) -> np.ndarray:
    """An image volume mapped from its PERCENTILES range to [0, 1], clipped (MONAI's
    ScaleIntensityRange). A volume whose range is empty (constant, or all but a few voxels one
    value: a failed export, a blank placeholder) is refused: it would become all zeros, or its raw
    values clipped, and train or score as if it were a brain."""
    from monai.transforms import ScaleIntensityRange

    low, high = (float(v) for v in np.percentile(volume, PERCENTILES))
    if high <= low:
        raise DataError(f"{path}: subject {subject}: {modality} is constant at {low:.4g} between its "
                        f"{PERCENTILES[0]}th and {PERCENTILES[1]}th percentiles (a blank or failed export?); "
                        "it cannot be normalised")
    scale = ScaleIntensityRange(a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)
    return np.asarray(scale(volume[None]), dtype=np.float32)[0]  # no copy: MONAI gives float32


def cache_folder() -> Path:
    """Where read subjects are kept: $LOSSTUNE_CACHE, else ~/.cache/losstune."""
    return Path(os.environ.get("LOSSTUNE_CACHE", Path.home() / ".cache" / "losstune")) / "medgen"


def cached(subject: Subject, mode: str) -> dict:
    """load_subject, kept on disk under a key of the files' paths, sizes and modification times
    (a changed file is read again); written to a temporary name and renamed, so that concurrent
    trials never read half a file."""
    stats = [(m, os.path.abspath(p), os.stat(p).st_size, os.stat(p).st_mtime_ns) for m, p in sorted(subject.files.items())]
    key = hashlib.sha1(repr((stats, mode, ORIENTATION, PERCENTILES, CACHE_VERSION)).encode()).hexdigest()[:20]
    path = cache_folder() / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in ("image", "cond", "seg", "spacing", "affine")}
        except Exception:  # a damaged cache entry: read the files again
            pass
    item = load_subject(subject, mode)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as out:
            np.savez(out, **item)
        os.replace(out.name, path)
    except OSError:  # no room or no permission for the cache: the read still stands
        pass
    return item


def axial_slices(volumes: list[dict], skip_empty: bool) -> list[dict]:
    """Every axial slice (last axis) of every volume as its own item, with its index in the volume
    ("slice"); with `skip_empty`, only slices with some image signal."""
    slices = []
    for item in volumes:
        for z in range(item["image"].shape[-1]):
            image = item["image"][..., z]
            if skip_empty and image.max() <= EMPTY_SLICE_LEVEL:
                continue
            slices.append({**{key: value if key in VOLUME_FACTS else value[..., z] for key, value in item.items()},
                           "slice": z})
    return slices


def augmentation(spatial_dims: int, size: tuple[int, ...], interpolation: dict):
    """The seed's conservative diffusion augmentation (seed "Diffusion Augmentation"): horizontal
    flip p=0.5, rotation +-10 degrees p=0.5, translation +-5% p=0.5; one draw for all the keys of
    `interpolation` (key -> "bilinear" or "nearest", the latter for masks)."""
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
        self.spatial_dims, self.size = spatial_dims, size
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
        from losstune.losses.tumour_size import bin_counts

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


# --- synthetic phantoms --------------------------------------------------------------------------

def phantom(shape: tuple[int, int, int], rng: np.random.Generator) -> dict:
    """One subject's volumes {modality: float32 [H, W, D]} in scanner-like units, and its seg."""
    grids = np.meshgrid(*(np.linspace(-1, 1, s, dtype=np.float32) for s in shape), indexing="ij")
    center = rng.uniform(-0.05, 0.05, 3)
    radii = np.array([0.80, 0.88, 0.85]) * rng.uniform(0.92, 1.05, 3)

    def ellipsoid(c, r):
        return sum(((g - ci) / ri) ** 2 for g, ci, ri in zip(grids, c, r))

    head = ellipsoid(center, radii)
    labels = np.zeros(shape, np.int8)  # 0 background, 1 skull, 2 grey, 3 white, 4 CSF, 5 tumour
    labels[head <= 1.0] = 1
    labels[head <= 0.82] = 2
    labels[ellipsoid(center, radii * 0.68) <= 1.0] = 3
    for side in (-1, 1):  # two ventricles
        labels[ellipsoid(center + np.array([0.0, side * 0.12, 0.0]), radii * np.array([0.25, 0.08, 0.3])) <= 1.0] = 4
    seg = np.zeros(shape, bool)
    for _ in range(rng.integers(1, 3)):
        c = center + rng.uniform(-0.35, 0.35, 3) * radii
        seg |= ellipsoid(c, rng.uniform(0.08, 0.2, 3)) <= 1.0
    seg &= labels >= 2  # tumours grow in the brain, not the skull
    labels[seg] = 5
    bias = 1.0 + 0.1 * grids[0] - 0.08 * grids[1]  # a smooth receive-coil bias field
    volumes = {}
    for modality, tissues in _TISSUES.items():
        clean = np.asarray(tissues, np.float32)[labels] * bias
        noise = rng.normal(0.0, 0.02, shape).astype(np.float32)
        volumes[modality] = (1000.0 * np.clip(clean + noise * (labels > 0), 0.0, None)).astype(np.float32)
    volumes["seg"] = seg.astype(np.float32)
    return volumes


def write_phantoms(directory: str, subjects: int, shape: tuple[int, int, int], seed: int) -> str:
    """Write `subjects` phantom subjects as .nii.gz under `directory`; returns `directory`."""
    import nibabel

    rng = np.random.default_rng(seed)
    for index in range(subjects):
        folder = Path(directory) / f"subject_{index:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for modality, volume in phantom(shape, rng).items():
            nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), str(folder / f"{modality}.nii.gz"))
    return directory


def phantom_folder(subjects: int, shape: tuple[int, int, int], seed: int) -> str:
    """A folder of phantoms shared by every trial on this machine with these settings: written
    once (to a temporary name, then renamed, so concurrent trials never read half a folder)."""
    key = hashlib.sha1(f"{subjects}-{shape}-{seed}-v1".encode()).hexdigest()[:12]
    final = os.path.join(tempfile.gettempdir(), "losstune_medgen_phantoms", key)
    if not os.path.isdir(final):
        os.makedirs(os.path.dirname(final), exist_ok=True)
        staging = tempfile.mkdtemp(dir=os.path.dirname(final), prefix=f"{key}.tmp")
        write_phantoms(staging, subjects, shape, seed)
        try:
            os.rename(staging, final)
        except OSError:  # another trial finished first; theirs is identical
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
    return final
