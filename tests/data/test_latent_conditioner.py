import re

import numpy as np
import pytest
import torch
from PIL import Image

from losstune.data import DataError
from losstune.data.latent_conditioner import (image_features, latent_targets, load_directory, mixup, outline_preserving,
                                              synthetic_images, synthetic_set)


def test_synthetic_set_is_deterministic_with_bounded_varied_targets():
    a, b = synthetic_set(16, 32, 3, 32, 32), synthetic_set(16, 32, 3, 32, 32)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    images, y1, y2 = a
    assert images.shape == (16, 1, 32, 32) and 0 <= images.min() and images.max() <= 1
    assert y1.shape == (16, 32) and y2.shape == (16, 32)
    assert np.abs(y1).max() < 1 and np.abs(y2).max() < 1  # inside the Tanh heads' range
    assert y1.std(axis=0).mean() > 0.2  # the targets vary with the image: something to learn
    assert not np.array_equal(synthetic_images(4, 32, seed=4), images[:4])


def test_targets_are_a_fixed_function_of_the_image():
    images = synthetic_images(8, 32, seed=0)
    y1, y2 = latent_targets(images, 32, 16)
    np.testing.assert_array_equal(latent_targets(images[2:3], 32, 16)[0], y1[2:3])  # per image, not per batch
    assert y2.shape == (8, 16)


def test_a_flip_changes_no_target_feature():
    images = synthetic_images(4, 32, seed=1)
    np.testing.assert_allclose(image_features(images[..., ::-1].copy()), image_features(images), rtol=1e-6, atol=1e-9)


def write_set(folder, names, size=32, mode="L", y1_dim=32, y2_dim=32, skip_latents=False, y1_value=0.0,
              listed=None):
    folder.mkdir(exist_ok=True)
    for name in names:
        pixels = np.random.default_rng(0).integers(0, 255, (size, size, 3) if mode in ("RGB", "P") else (size, size),
                                                   dtype=np.uint8)
        image = Image.fromarray(pixels, mode="RGB" if mode in ("RGB", "P") else "L")
        (image.convert(mode) if mode != image.mode else image).save(folder / name)
    if not skip_latents:
        listed = names if listed is None else listed
        y1 = np.zeros((len(listed), y1_dim))
        y1[0, 0] = y1_value
        np.savez(folder / "latents.npz", names=np.array(listed), y1=y1, y2=np.zeros((len(listed), 8, y2_dim // 8)))


def test_reads_a_directory_of_pngs_with_their_latents(tmp_path):
    write_set(tmp_path / "d", ["b.png", "a.png"])
    images, y1, y2 = load_directory(tmp_path / "d", 32, 32, 32)
    assert images.shape == (2, 1, 32, 32) and y1.shape == (2, 32) and y2.shape == (2, 32)
    assert 0 <= images.min() and images.max() <= 1


def test_names_saved_as_bytes_read_as_the_file_names(tmp_path):
    write_set(tmp_path / "d", ["b.png", "a.png"], listed=[b"b.png", b"a.png"])  # dtype S, as h5py gives names
    in_order = load_directory(tmp_path / "d", 32, 32, 32)
    write_set(tmp_path / "s", ["b.png", "a.png"])
    for got, expected in zip(in_order, load_directory(tmp_path / "s", 32, 32, 32)):
        np.testing.assert_array_equal(got, expected)


def test_names_saved_as_paths_read_as_the_file_names(tmp_path):
    write_set(tmp_path / "s", ["b.png", "a.png"])
    write_set(tmp_path / "d", ["b.png", "a.png"], listed=["/data/run1/b.png", "C:\\run1\\a"])  # a stem: a.png
    for got, expected in zip(load_directory(tmp_path / "d", 32, 32, 32), load_directory(tmp_path / "s", 32, 32, 32)):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("case, message", [
    (dict(skip_latents=True), "latents.npz: missing"),
    (dict(size=48), "a.png: 48x48 pixels, expected 32x32"),
    (dict(mode="RGB"), "a.png: an RGB image in colour (1024 of 1024 pixels not grey); expected an 8- or 16-bit"),
    (dict(mode="P"), "a.png: a palette (indexed colour) image in colour ("),
    (dict(y1_dim=16), "latents.npz: y1 has shape (1, 16), expected (1, 32)"),
    (dict(y1_value=float("nan")), "latents.npz: y1 holds 1 non-finite values (first in row 0)"),
    (dict(y1_value=7.09), "latents.npz: y1 holds 1 values outside [-1, 1] (min 0, max 7.09), which the model's Tanh"),
    (dict(listed=["a.png", "a.png"]), "latents.npz: names lists 'a.png' more than once"),
    (dict(listed=["x/a.png", "y/a.png"]), "latents.npz: names lists 'a.png' more than once"),
])
def test_bad_data_names_the_file(tmp_path, case, message):
    write_set(tmp_path / "d", ["a.png"], **case)
    with pytest.raises(DataError, match=re.escape(message)):
        load_directory(tmp_path / "d", 32, 32, 32)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "P"])
def test_a_grey_picture_saved_in_another_mode_reads_as_its_grey(tmp_path, mode):
    write_set(tmp_path / "d", ["a.png"])  # mode L: the reference
    reference = load_directory(tmp_path / "d", 32, 32, 32)[0]
    Image.open(tmp_path / "d" / "a.png").convert(mode).save(tmp_path / "d" / "a.png")  # opaque, R = G = B
    np.testing.assert_array_equal(load_directory(tmp_path / "d", 32, 32, 32)[0], reference)


def test_a_1_bit_outline_reads_as_0_and_1(tmp_path):
    write_set(tmp_path / "d", ["a.png"])
    outline = np.zeros((32, 32), bool)
    outline[8:24, 8] = True
    Image.fromarray(outline).save(tmp_path / "d" / "a.png")  # mode 1
    np.testing.assert_array_equal(load_directory(tmp_path / "d", 32, 32, 32)[0][0, 0], outline.astype(np.float32))


def test_a_grey_picture_with_transparency_is_refused(tmp_path):
    write_set(tmp_path / "d", ["a.png"])
    grey = Image.open(tmp_path / "d" / "a.png").convert("LA")
    alpha = np.full((32, 32), 255, np.uint8)
    alpha[:3, :] = 0  # 96 see-through pixels: what lies under them is a background the user must choose
    grey.putalpha(Image.fromarray(alpha))
    grey.save(tmp_path / "d" / "a.png")
    with pytest.raises(DataError, match=re.escape("a.png: a greyscale image with alpha with 96 transparent pixels")):
        load_directory(tmp_path / "d", 32, 32, 32)


def test_pngs_named_in_capitals_are_read(tmp_path):
    write_set(tmp_path / "d", ["A.PNG"])
    assert load_directory(tmp_path / "d", 32, 32, 32)[0].shape == (1, 1, 32, 32)


def test_hidden_files_are_no_images(tmp_path):
    write_set(tmp_path / "d", ["a.png"])
    (tmp_path / "d" / "._a.png").write_bytes(b"\x00\x05\x16\x07")  # macOS's AppleDouble file beside a.png
    images, _, _ = load_directory(tmp_path / "d", 32, 32, 32)
    assert images.shape == (1, 1, 32, 32)


def test_an_image_without_latents_is_named(tmp_path):
    write_set(tmp_path / "d", ["a.png"])
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "d" / "extra.png")
    with pytest.raises(DataError, match="extra.png: no latents for it"):
        load_directory(tmp_path / "d", 32, 32, 32)


def test_outline_preserving_with_only_a_flip_is_the_mirror_image():
    x = torch.rand(3, 1, 16, 16)
    out = outline_preserving(x, flip_p=1.0, max_shift_px=0, max_degrees=0.0, scale_range=(1.0, 1.0))
    torch.testing.assert_close(out, x.flip(-1), atol=1e-5, rtol=0)


def test_outline_preserving_keeps_the_outline_close():
    x = torch.from_numpy(synthetic_images(4, 64, seed=2))
    out = outline_preserving(x, 0.0, 1, 5.0, (0.95, 1.05))
    assert out.shape == x.shape and (out - x).abs().mean() < 0.2 * x.mean() + 0.05


def test_mixup_mixes_inputs_and_targets_with_one_weight():
    torch.manual_seed(0)
    x, y1, y2 = torch.arange(4.0).view(4, 1), torch.arange(4.0).view(4, 1) * 10, torch.arange(4.0).view(4, 1) * 100
    mx, my1, my2 = mixup(x, y1, y2, alpha=0.2)
    torch.testing.assert_close(my1, mx * 10)  # the same lam and partner for inputs and targets
    torch.testing.assert_close(my2, mx * 100)
