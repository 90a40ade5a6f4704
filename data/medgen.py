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
trials that build on it do not read the NIfTI files again.

Beside it: data.medgen_modes (what each mode reads), data.medgen_dataset (the training items),
data.medgen_phantoms (the synthetic default). Shared by the medgen families.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from losstune.data import DataError
from losstune.data.medgen_modes import MODE_CONDITIONING, MODE_IMAGES

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

@dataclass(frozen=True)
class Subject:
    name: str
    files: dict  # modality -> path


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
    # here, not at the top: loads scipy, nibabel only where this runs
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
    # here, not at the top: loads torch, optuna, monai and more only where this runs
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
            "seg": volumes["seg"][None], **ras_geometry(subject.files["seg"])}


def ras_geometry(path: str) -> dict:
    """From the header, read once: the voxel size in mm along the RAS-oriented array's axes (H, W,
    D; read_volume's array) and that array's voxel-to-world affine, the file's composed with the
    axis flips and swaps that orient it (as nibabel's as_reoriented)."""
    # here, not at the top: loads scipy, nibabel only where this runs
    import nibabel

    image = nibabel.load(path)
    orientation = nibabel.orientations.io_orientation(image.affine)
    zooms = np.asarray(image.header.get_zooms()[:3], dtype=np.float32)
    spacing = np.empty(3, np.float32)
    for axis, (target, _) in enumerate(orientation):
        spacing[int(target)] = zooms[axis]
    return {"spacing": spacing,
            "affine": image.affine @ nibabel.orientations.inv_ornt_aff(orientation, image.shape[:3])}


def normalised(volume: np.ndarray, path: str, subject: str, modality: str) -> np.ndarray:
    """An image volume mapped from its PERCENTILES range to [0, 1], clipped (MONAI's
    ScaleIntensityRange). A volume whose range is empty (constant, or all but a few voxels one
    value: a failed export, a blank placeholder) is refused: it would become all zeros, or its raw
    values clipped, and train or score as if it were a brain."""
    # here, not at the top: loads torch, optuna, monai and more only where this runs
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


