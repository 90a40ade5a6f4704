import gzip
import shutil

import nibabel
import numpy as np
import pytest
import torch

from losstune.data import DataError
from losstune.data.medgen import EMPTY_SLICE_LEVEL, axial_slices, list_subjects, load_volumes
from losstune.data.medgen_dataset import Items
from losstune.data.medgen_modes import modalities_for, mode_channels
from losstune.data.medgen_phantoms import write_phantoms

SHAPE = (24, 24, 12)


@pytest.fixture()
def folder(tmp_path):
    return write_phantoms(str(tmp_path / "subjects"), 2, SHAPE, seed=0)


def volumes_of(folder, mode):
    return load_volumes(list_subjects(folder, modalities_for(mode)), mode)


def save(path, volume):
    nibabel.save(nibabel.Nifti1Image(np.asarray(volume, np.float32), np.eye(4)), str(path))


def test_phantoms_are_read_back_normalised_with_a_binary_tumour_mask(folder):
    volumes = volumes_of(folder, "dual")
    assert len(volumes) == 2
    item = volumes[0]
    assert item["image"].shape == (2, *SHAPE) and item["cond"].shape == (1, *SHAPE) and item["seg"].shape == (1, *SHAPE)
    assert item["image"].min() == 0.0 and item["image"].max() == 1.0  # percentile-normalised and clipped
    assert set(np.unique(item["seg"])) == {0.0, 1.0} and item["seg"].sum() > 0
    # t1_gd (the second image) shows the tumour brighter than its surroundings, as contrast should
    tumour = item["seg"][0] > 0
    assert item["image"][1][tumour].mean() > item["image"][1][~tumour & (item["image"][1] > 0.1)].mean()


def test_nii_and_nii_gz_are_both_found(folder):
    subject = sorted(p for p in __import__("pathlib").Path(folder).iterdir())[0]
    with gzip.open(subject / "seg.nii.gz") as packed, open(subject / "seg.nii", "wb") as plain:
        shutil.copyfileobj(packed, plain)
    (subject / "seg.nii.gz").unlink()
    subjects = list_subjects(folder, modalities_for("bravo"))
    assert subjects[0].files["seg"].endswith("seg.nii") and subjects[1].files["seg"].endswith("seg.nii.gz")


def test_hidden_folders_and_files_beside_the_subjects_are_no_subjects(folder):
    root = __import__("pathlib").Path(folder)
    (root / ".ipynb_checkpoints").mkdir()  # as Jupyter leaves one
    (root / "participants.tsv").write_text("participant_id\n")
    assert [s.name for s in list_subjects(folder, modalities_for("bravo"))] == ["subject_000", "subject_001"]


def test_an_empty_directory_is_named(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path}: no subject folders"):
        list_subjects(str(tmp_path), modalities_for("bravo"))


def test_a_missing_modality_names_the_subject_and_the_modality(folder):
    (__import__("pathlib").Path(folder) / "subject_001" / "t1_gd.nii.gz").unlink()
    with pytest.raises(DataError, match="subject_001 has no t1_gd.nii or t1_gd.nii.gz"):
        list_subjects(folder, modalities_for("dual"))
    list_subjects(folder, modalities_for("bravo"))  # bravo mode does not need t1_gd


def test_a_seg_of_another_shape_names_both_files(folder):
    seg = f"{folder}/subject_000/seg.nii.gz"
    save(seg, np.zeros((24, 24, 10)))
    with pytest.raises(DataError, match=r"seg.nii.gz: subject subject_000's seg has shape \(24, 24, 10\), its "
                                        r"bravo \(24, 24, 12\) \(.*bravo.nii.gz\)"):
        volumes_of(folder, "bravo")


def reference_volumes(folder):
    return volumes_of(folder, "bravo")[0]


def test_a_subject_stored_sagittally_or_lps_reads_as_the_axial_ras_one(folder, tmp_path):
    expected = reference_volumes(folder)
    for modality in ("bravo", "seg"):
        path = f"{folder}/subject_000/{modality}.nii.gz"
        ras = nibabel.load(path).get_fdata().astype(np.float32)
        # sagittal storage: voxel axes (S, A, R) -> world (R, A, S); the affine says so
        sagittal = np.zeros((4, 4))
        sagittal[0, 2] = sagittal[1, 1] = sagittal[2, 0] = sagittal[3, 3] = 1.0
        nibabel.save(nibabel.Nifti1Image(ras.transpose(2, 1, 0).copy(), sagittal), path)
    np.testing.assert_allclose(reference_volumes(folder)["image"], expected["image"], atol=1e-6)
    np.testing.assert_array_equal(reference_volumes(folder)["seg"], expected["seg"])
    for modality in ("bravo", "seg"):
        path = f"{folder}/subject_000/{modality}.nii.gz"
        ras = nibabel.as_closest_canonical(nibabel.load(path)).get_fdata().astype(np.float32)
        lps = np.diag([-1.0, -1.0, 1.0, 1.0])  # x and y stored reversed, as DICOM-derived files often are
        lps[:2, 3] = [SHAPE[0] - 1, SHAPE[1] - 1]
        nibabel.save(nibabel.Nifti1Image(ras[::-1, ::-1].copy(), lps), path)
    np.testing.assert_allclose(reference_volumes(folder)["image"], expected["image"], atol=1e-6)


def test_a_volume_saved_with_one_channel_reads_as_the_3d_one_and_more_channels_are_refused(folder):
    expected = reference_volumes(folder)
    for modality in ("bravo", "seg"):  # [H, W, D, 1], as some tools save a single volume
        path = f"{folder}/subject_000/{modality}.nii.gz"
        save(path, nibabel.load(path).get_fdata()[..., None])
        assert nibabel.load(path).shape == (*SHAPE, 1)
    np.testing.assert_array_equal(reference_volumes(folder)["image"], expected["image"])
    np.testing.assert_array_equal(reference_volumes(folder)["seg"], expected["seg"])
    path = f"{folder}/subject_000/bravo.nii.gz"
    save(path, np.stack([nibabel.load(path).get_fdata()[..., 0]] * 2, axis=-1))  # two echoes or times: which one?
    with pytest.raises(DataError, match=r"bravo.nii.gz: subject subject_000: expected a 3D volume, got shape "
                                        r"\(24, 24, 12, 2\)"):
        volumes_of(folder, "bravo")


def test_a_seg_shifted_in_world_space_names_both_files(folder):
    seg = f"{folder}/subject_000/seg.nii.gz"
    shifted = np.eye(4)
    shifted[2, 3] = 20.0  # 20 mm up: the same voxels, on another grid
    nibabel.save(nibabel.Nifti1Image(nibabel.load(seg).get_fdata().astype(np.float32), shifted), seg)
    with pytest.raises(DataError, match=r"seg.nii.gz: subject subject_000's seg is not on its bravo's grid \(affines "
                                        r"differ; origin by up to 20 mm\) \(.*bravo.nii.gz\)"):
        volumes_of(folder, "bravo")


def test_an_unreadable_file_is_named(folder):
    path = f"{folder}/subject_001/bravo.nii.gz"
    with open(path, "wb") as f:
        f.write(b"not a nifti file")
    with pytest.raises(DataError, match=f"{path}: subject subject_001: cannot read it as NIfTI"):
        volumes_of(folder, "bravo")


def test_non_finite_voxels_are_counted_and_named(folder):
    volume = np.ones(SHAPE)
    volume[0, 0, :3] = np.nan
    volume[1, 1, 1] = np.inf
    path = f"{folder}/subject_000/bravo.nii.gz"
    save(path, volume)
    with pytest.raises(DataError, match=f"{path}: subject subject_000: 4 non-finite voxels"):
        volumes_of(folder, "bravo")


@pytest.mark.parametrize("modality", ["bravo", "seg"])
def test_a_blank_image_volume_is_refused_and_a_blank_mask_is_not(folder, modality):
    volume = np.zeros(SHAPE)
    volume[0, 0, 0] = 5.0  # one voxel of 6912: inside the top 0.5%, so the percentile range is empty
    path = f"{folder}/subject_000/{modality}.nii.gz"
    save(path, volume)
    if modality == "seg":  # a tumour-free mask is data: it reads, as a mask of one voxel
        assert volumes_of(folder, "bravo")[0]["seg"].sum() == 1
        return
    with pytest.raises(DataError, match=f"{path}: subject subject_000: bravo is constant at 0 between its 0.5th"):
        volumes_of(folder, "bravo")


def test_empty_slices_are_skipped_only_when_asked(folder):
    volumes = volumes_of(folder, "bravo")
    every = axial_slices(volumes, skip_empty=False)
    kept = axial_slices(volumes, skip_empty=True)
    assert len(every) == 2 * SHAPE[2]
    assert 0 < len(kept) < len(every)  # the phantom's head does not fill the top and bottom slices
    assert all(s["image"].max() > EMPTY_SLICE_LEVEL for s in kept)
    assert kept[0]["image"].shape == (1, 24, 24)


def test_2d_items_are_resized_and_3d_items_cropped_or_padded(folder):
    volumes = volumes_of(folder, "bravo")
    image, cond, seg = Items(axial_slices(volumes, True), 2, (16, 16), augment=False)[0]
    assert image.shape == cond.shape == seg.shape == (1, 16, 16) and image.dtype == torch.float32
    image, cond, seg = Items(volumes, 3, (32, 16, 12), augment=False)[0]
    assert image.shape == (1, 32, 16, 12)  # H padded 24 -> 32, W cropped 24 -> 16, D kept
    assert torch.equal(image[:, :4], torch.zeros(1, 4, 16, 12))  # the padding is zeros


def test_seg_mode_has_no_conditioning_channels(folder):
    volumes = volumes_of(folder, "seg")
    image, cond, seg = Items(axial_slices(volumes, False), 2, (16, 16), augment=False, binary_images=True)[5]
    assert cond.shape == (0, 16, 16) and torch.equal(image, seg)


def test_augmentation_moves_image_and_masks_together(folder):
    # in seg mode the image is the mask itself, interpolated the same way: any flip, rotation or
    # shift drawn for the image must leave it equal to the transformed seg
    volumes = volumes_of(folder, "seg")
    items = Items(axial_slices(volumes, True), 2, (24, 24), augment=True, binary_images=True, seed=0)
    plain = Items(axial_slices(volumes, True), 2, (24, 24), augment=False, binary_images=True)
    changed = 0
    for index in range(len(items)):
        image, _, seg = items[index]
        assert torch.equal(image, seg)
        changed += not torch.equal(image, plain[index][0])
    assert changed > 0  # the augmentation did something


def augmented_images(items) -> list:
    return [items[i][0] for i in range(len(items))]


def test_augmentation_follows_the_seed(folder):
    # MONAI's transforms keep random states of their own: without seeding them, two trials with
    # the same train.seed would train on different augmentations
    slices = axial_slices(volumes_of(folder, "bravo"), True)
    first, again, other = (augmented_images(Items(slices, 2, (16, 16), augment=True, seed=s)) for s in (1, 1, 2))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_data_loader_workers_and_epochs_draw_their_own_augmentation(folder):
    # each worker process starts from a copy of the transforms' random states: without reseeding,
    # both workers and every epoch would replay the same flips, rotations and shifts
    slices = axial_slices(volumes_of(folder, "bravo"), True)
    one_item = Items(slices[:1] * 8, 2, (16, 16), augment=True, seed=0)  # the same slice 8 times
    loader = torch.utils.data.DataLoader(one_item, batch_size=4, num_workers=2,
                                         generator=torch.Generator().manual_seed(0))
    epochs = [torch.cat([images for images, _, _ in loader]) for _ in range(2)]
    by_worker = epochs[0][:4], epochs[0][4:]  # worker 0 makes the first batch, worker 1 the second
    assert not torch.equal(by_worker[0], by_worker[1])
    assert not torch.equal(epochs[0], epochs[1])


def test_files_are_read_once_not_every_epoch(folder, monkeypatch):
    volumes = volumes_of(folder, "bravo")
    items = Items(axial_slices(volumes, True), 2, (16, 16), augment=True)

    def no_reading(*args, **kwargs):
        raise AssertionError("a file was read after the dataset was built")

    monkeypatch.setattr(nibabel, "load", no_reading)
    for _ in range(2):  # two epochs
        for index in range(len(items)):
            items[index]


@pytest.mark.parametrize("mode, channels", [("seg", (1, 1)), ("bravo", (2, 1)), ("dual", (3, 2)),
                                           ("seg_conditioned", (8, 1)), ("seg_conditioned_input", (8, 1)),
                                           ("seg_conditioned_3d", (8, 1))])
def test_the_seeds_channel_table(mode, channels):
    assert mode_channels(mode) == channels


def test_size_conditioned_items_carry_one_constant_map_per_size_bin(tmp_path):
    # one 2D slice at 1 mm with two tumours: a 2x2 square (Feret diameter sqrt(8) = 2.8 mm: bin 0,
    # under 3 mm) and a 1x12 bar (sqrt(12^2 + 1) = 12.04 mm: bin 3, 10-15 mm)
    seg = np.zeros((1, 20, 20), np.float32)
    seg[0, 2:4, 2:4] = 1.0
    seg[0, 8, 4:16] = 1.0
    item = {"image": seg, "cond": np.zeros((0, 20, 20), np.float32), "seg": seg, "spacing": np.ones(3)}
    for kind, expected in (("counts", [1.0, 0, 0, 1.0, 0, 0, 0]), ("binary", [1.0, 0, 0, 1.0, 0, 0, 0])):
        image, cond, _ = Items([item], 2, (16, 16), augment=False, binary_images=True, size_bins=kind)[0]
        assert cond.shape == (7, 16, 16)
        assert cond[:, 0, 0].tolist() == expected and torch.equal(cond, cond[:, :1, :1].expand(7, 16, 16))
    twice = dict(item, seg=np.concatenate([seg[:, :10], seg[:, :10]], axis=1))  # the square twice, no bar
    counts = Items([twice], 2, (16, 16), augment=False, binary_images=True, size_bins="counts")[0][1][:, 0, 0]
    binary = Items([twice], 2, (16, 16), augment=False, binary_images=True, size_bins="binary")[0][1][:, 0, 0]
    assert counts.tolist()[0] == 2.0 and binary.tolist()[0] == 1.0  # the count, or whether there is one


def test_multi_modality_reads_all_four_images_and_names_a_missing_one(folder):
    volumes = volumes_of(folder, "multi_modality")
    assert volumes[0]["image"].shape[0] == 4 and volumes[0]["cond"].shape[0] == 0
    import os

    os.remove(os.path.join(folder, "subject_001", "flair.nii.gz"))
    with pytest.raises(DataError, match=r"subject_001: subject subject_001 has no flair\.nii or flair\.nii\.gz"):
        list_subjects(folder, modalities_for("multi_modality"))


def world_centroid(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The mean world position (mm) of a mask's voxels."""
    voxels = np.argwhere(mask > 0.5)
    return (affine[:3, :3] @ voxels.T).T.mean(0) + affine[:3, 3]


def test_each_item_knows_its_subject_slice_and_where_it_lies_in_the_world(folder):
    # issue 73, item 2: the items kept no position or orientation, so generated samples were written
    # at the origin in the array's axes. Stored sagittally, 1.5 x 1 x 2 mm voxels, origin moved:
    seg = f"{folder}/subject_000/seg.nii.gz"
    for modality in ("bravo", "seg"):
        path = f"{folder}/subject_000/{modality}.nii.gz"
        ras = nibabel.load(path).get_fdata().astype(np.float32)
        sagittal = np.zeros((4, 4))  # voxel axes (S, A, R) -> world (R, A, S)
        sagittal[0, 2], sagittal[1, 1], sagittal[2, 0], sagittal[3, 3] = 1.5, 1.0, 2.0, 1.0
        sagittal[:3, 3] = [-40.0, 12.0, 7.5]
        nibabel.save(nibabel.Nifti1Image(ras.transpose(2, 1, 0).copy(), sagittal), path)
    stored = nibabel.load(seg)
    truth = world_centroid(stored.get_fdata(), stored.affine)
    volumes = volumes_of(folder, "bravo")
    # 3D, padded and cropped: the item's tumour lies where the file's does
    items = Items(volumes[:1], 3, (32, 16, 12), augment=False)
    source = items.source(0)
    assert source["subject"] == "subject_000" and source["slice"] is None
    assert np.allclose(world_centroid(items[0][2][0].numpy(), np.asarray(source["affine"])), truth)
    # 2D, each slice resized 24 -> 48: the slices' tumour voxels, weighted by area, centre on it too
    slices = [s for s in axial_slices(volumes[:1], skip_empty=False) if s["seg"].any()]
    items = Items(slices, 2, (48, 48), augment=False)
    points, weights = [], []
    for k in range(len(items)):
        source = items.source(k)
        assert source["slice"] == slices[k]["slice"] and source["subject"] == "subject_000"
        mask = items[k][2][0].numpy()[..., None]  # a slice as a one-slice volume, as generate writes it
        points.append(world_centroid(mask, np.asarray(source["affine"])))
        weights.append(mask.sum())
    # (24 -> 48 doubles each voxel exactly: the same centre to rounding)
    assert np.allclose(np.average(points, axis=0, weights=weights), truth, atol=1e-6)
