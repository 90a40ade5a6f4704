import numpy as np
import pytest
import torch

from losstune.data import DataError
from losstune.data.lgt import (build_style_indices_cache, hold_out_per_style, load_latents, other_styles, sample_style_batch,
                               synthetic_latents)
from losstune.losses.energy import patch_swd


def test_synthetic_latents_shapes_balance_and_determinism():
    latents, ids = synthetic_latents(40, num_styles=4, size=16, seed=3)
    assert latents.shape == (40, 4, 16, 16) and latents.dtype == np.float32 and np.isfinite(latents).all()
    assert np.bincount(ids).tolist() == [10, 10, 10, 10]
    again, _ = synthetic_latents(40, num_styles=4, size=16, seed=3)
    assert np.array_equal(latents, again)


def test_synthetic_styles_differ_more_between_styles_than_within():
    latents, ids = (torch.from_numpy(a) for a in synthetic_latents(64, num_styles=4, size=16, seed=0))
    by_style = [latents[ids == k] for k in range(4)]
    within = np.mean([float(patch_swd(s[:8], s[8:], generator=torch.Generator().manual_seed(0))) for s in by_style])
    between = np.mean([float(patch_swd(by_style[a][:8], by_style[b][8:], generator=torch.Generator().manual_seed(0)))
                       for a in range(4) for b in range(4) if a != b])
    assert between > 10 * within


def test_style_references_come_from_the_target_style_never_the_source():
    # the seed's bug: x_style_ref = x_src. References must be samples of the target style.
    latents, ids = (torch.from_numpy(a) for a in synthetic_latents(40, num_styles=4, size=8, seed=0))
    cache = build_style_indices_cache(ids)
    assert sorted(cache) == [0, 1, 2, 3] and all((ids[index] == style).all() for style, index in cache.items())
    source = torch.arange(12)
    targets = other_styles(ids[source], 4, torch.Generator().manual_seed(0))
    assert (targets != ids[source]).all()
    refs = sample_style_batch(latents, cache, targets, torch.Generator().manual_seed(1))
    for ref, target, src in zip(refs, targets, source):
        matches = [i for i in range(len(latents)) if torch.equal(latents[i], ref)]
        assert len(matches) == 1 and ids[matches[0]] == target and matches[0] != src


def test_other_styles_covers_every_other_style():
    ids = torch.zeros(400, dtype=torch.long)
    assert set(other_styles(ids, 4, torch.Generator().manual_seed(0)).tolist()) == {1, 2, 3}


def test_hold_out_keeps_validation_samples_of_every_style():
    latents, ids = synthetic_latents(40, num_styles=4, size=8)
    _, train_ids, _, val_ids = hold_out_per_style(latents, ids, 0.2, "x.npz")
    assert np.bincount(val_ids).tolist() == [2, 2, 2, 2] and np.bincount(train_ids).tolist() == [8, 8, 8, 8]
    with pytest.raises(DataError, match="x.npz: style 0 has 1 sample"):
        hold_out_per_style(latents[:1], ids[:1] * 0, 0.2, "x.npz")


def test_npz_and_pt_files_load(tmp_path):
    latents, ids = synthetic_latents(8, num_styles=2, size=8)
    np.savez(tmp_path / "a.npz", latents=latents, style_ids=ids)
    torch.save({"latents": torch.from_numpy(latents), "style_ids": torch.from_numpy(ids)}, tmp_path / "a.pt")
    for name in ("a.npz", "a.pt"):
        loaded, loaded_ids = load_latents(str(tmp_path / name), num_styles=2)
        assert np.array_equal(loaded, latents) and np.array_equal(loaded_ids, ids)


def test_latents_saved_in_bfloat16_load_as_float32(tmp_path):
    latents, ids = synthetic_latents(8, num_styles=2, size=8)
    bf16 = torch.from_numpy(latents).bfloat16()  # as a bf16 autoencoder's latents are often saved
    torch.save({"latents": bf16, "style_ids": torch.from_numpy(ids).int()}, tmp_path / "bf16.pt")
    loaded, loaded_ids = load_latents(str(tmp_path / "bf16.pt"), num_styles=2)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, bf16.float().numpy())  # bf16 is exact in float32
    assert loaded_ids.dtype == np.int64 and np.array_equal(loaded_ids, ids)


@pytest.mark.parametrize("latents, ids, message", [
    (np.zeros((4, 4, 8)), np.array([0, 1, 0, 1]), r"bad.npz: latents must be \[N, 4, H, W\], got shape \[4, 4, 8\]"),
    (np.zeros((4, 3, 8, 8)), np.array([0, 1, 0, 1]), "latents must be"),
    (np.zeros((4, 4, 8, 8)), np.array([0, 1, 0, 2]), r"bad.npz: style id 2 out of range 0..1 \(data.num_styles\)"),
    (np.zeros((4, 4, 8, 8)), np.array([0, 0, 0, 0]), "bad.npz: style 1 has no samples"),
    (np.zeros((4, 4, 8, 8)), np.array([0.0, 1, 0, 1]), "style_ids must be 4 integers"),
    (np.full((4, 4, 8, 8), np.nan), np.array([0, 1, 0, 1]), "bad.npz: latents contain NaN"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, latents, ids, message):
    np.savez(tmp_path / "bad.npz", latents=latents, style_ids=ids)
    with pytest.raises(DataError, match=message):
        load_latents(str(tmp_path / "bad.npz"), num_styles=2)


def test_missing_keys_unreadable_and_absent_files(tmp_path):
    np.savez(tmp_path / "keys.npz", latents=np.zeros((2, 4, 8, 8)))
    with pytest.raises(DataError, match="keys.npz: missing style_ids"):
        load_latents(str(tmp_path / "keys.npz"), 2)
    (tmp_path / "junk.pt").write_bytes(b"not a tensor file")
    with pytest.raises(DataError, match="junk.pt: unreadable"):
        load_latents(str(tmp_path / "junk.pt"), 2)
    with pytest.raises(DataError, match="nope.npz: no such file"):
        load_latents(str(tmp_path / "nope.npz"), 2)
