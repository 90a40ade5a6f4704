import numpy as np
import pytest

from losstune.data import DataError
from losstune.data.hdr_patch import load_patches, synthetic_patches


def test_synthetic_patches_are_deterministic_and_span_the_hdr_range():
    x1, y1 = synthetic_patches(64, 16, seed=3)
    x2, y2 = synthetic_patches(64, 16, seed=3)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert x1.shape == (64, 7, 16, 16) and y1.shape == (64, 3, 16, 16)
    assert y1.min() <= 2e-4 and y1.max() >= 1e3  # radiance spans >= 1e-4 .. 1e3 (1e4 at larger N)
    holes = x1[:, 3] > 0
    assert holes.any() and (x1[:, :3][np.repeat(holes[:, None], 3, 1)] == 0).all()  # holes are zero radiance
    assert not np.array_equal(synthetic_patches(8, 16, seed=4)[0], x1[:8])


def write(tmp_path, name="p.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_reader_round_trip(tmp_path):
    x, y = synthetic_patches(4, 8)
    got_x, got_y = load_patches(write(tmp_path, input=x, target=y))
    assert np.array_equal(got_x, x) and np.array_equal(got_y, y)


@pytest.mark.parametrize("arrays, message", [
    ({"input": np.ones((2, 7, 8, 8))}, "missing array 'target'"),
    ({"input": np.ones((2, 7, 8, 8)), "target": np.ones((3, 3, 8, 8))}, "differ in N, H or W"),
    ({"input": np.ones((2, 7, 8, 8)), "target": np.ones((2, 3, 4, 4))}, "differ in N, H or W"),
    ({"input": np.ones((2, 7, 8)), "target": np.ones((2, 3, 8, 8))}, "'input' must be [N, C>=4, H, W]"),
    ({"input": np.ones((2, 7, 8, 8)), "target": np.ones((2, 1, 8, 8))}, "'target' must be [N, 3, H, W]"),
    ({"input": np.full((2, 7, 8, 8), np.nan), "target": np.ones((2, 3, 8, 8))}, "finite non-negative"),
    ({"input": -np.ones((2, 7, 8, 8)), "target": np.ones((2, 3, 8, 8))}, "finite non-negative"),
])
def test_reader_errors_name_the_file(tmp_path, arrays, message):
    path = write(tmp_path, **arrays)
    with pytest.raises(DataError) as err:
        load_patches(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_patches(tmp_path / "absent.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="corrupt.npz: not a readable .npz file"):
        load_patches(corrupt)
