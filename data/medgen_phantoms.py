"""MedGen's synthetic default: brain-like phantoms (skull, grey and white matter, ventricles and
one or two ellipsoid tumours, with per-modality contrasts, a bias field and noise) written as
NIfTI files, so that the demo and the tests run the same reader as real data (data.medgen)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

# Phantom tissue intensities (arbitrary scanner units / 1000) per modality: background, skull,
# grey matter, white matter, CSF, tumour. T1 post-contrast (bravo, t1_gd) makes the tumour bright.
_TISSUES = {
    "bravo": (0.0, 0.30, 0.55, 0.75, 0.15, 0.95),
    "flair": (0.0, 0.25, 0.60, 0.50, 0.10, 0.90),
    "t1_pre": (0.0, 0.30, 0.60, 0.80, 0.20, 0.50),
    "t1_gd": (0.0, 0.30, 0.60, 0.80, 0.20, 1.00),
}




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
    # here, not at the top: loads scipy, nibabel only where this runs
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
