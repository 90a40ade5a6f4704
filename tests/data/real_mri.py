"""Subjects made of the real brain MRI that nibabel ships (nibabel.testing.data_path): a T1 of
33 x 41 x 25 voxels of 2 mm, stored left-to-right flipped (LAS), and the same head resampled to
4 mm and stored RAS. Each subject gets a spherical "tumour" of a known diameter (brighter in the
image, as an enhancing tumour) in a seg with the image's affine."""

from __future__ import annotations

import os

import numpy as np

BRAIN = "anatomical.nii"  # LAS, 2 mm
RESAMPLED = "reoriented_anat_moved.nii"  # RAS, 4 mm
DIAMETERS_MM = (36.0, 6.0, 14.0, 24.0, 36.0)  # subject 0 (4 mm) large; then tiny, small, medium, large


# other contrasts of the same head, for the modes that read them (multi_modality): monotone remaps of
# its intensities, so each is a real volume with its own histogram
CONTRASTS = {"flair": lambda v: np.sqrt(np.maximum(v, 0)), "t1_pre": lambda v: np.maximum(v, 0) ** 1.5,
             "t1_gd": lambda v: v * 1.1}


def brain_subjects(folder, modalities=("bravo",)) -> str:
    """Five subjects under `folder` (subject_000: the 4 mm RAS head; 001-004 the 2 mm LAS one, the
    last held out by the default split), each `bravo.nii` (and any other of `modalities`, as
    CONTRASTS remaps it) and `seg.nii.gz`; returns `folder`."""
    import nibabel
    from nibabel.testing import data_path

    for index, diameter in enumerate(DIAMETERS_MM):
        source = nibabel.load(os.path.join(data_path, RESAMPLED if index == 0 else BRAIN))
        image = np.asanyarray(source.dataobj).astype(np.float32)
        seg = sphere(image.shape, source.header.get_zooms()[:3], diameter)
        image[seg > 0] *= 1.3
        subject = os.path.join(folder, f"subject_{index:03d}")
        os.makedirs(subject, exist_ok=True)
        for modality in modalities:
            volume = image if modality == "bravo" else CONTRASTS[modality](image).astype(np.float32)
            nibabel.save(nibabel.Nifti1Image(volume, source.affine), os.path.join(subject, f"{modality}.nii"))
        nibabel.save(nibabel.Nifti1Image(seg, source.affine), os.path.join(subject, "seg.nii.gz"))
    return str(folder)


def sphere(shape: tuple, spacing: tuple, diameter_mm: float) -> np.ndarray:
    """A ball of `diameter_mm` (in mm, at the voxel spacing) at the middle of the volume, uint8."""
    grid = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)], indexing="ij")
    return (sum(axis ** 2 for axis in grid) <= (diameter_mm / 2) ** 2).astype(np.uint8)
