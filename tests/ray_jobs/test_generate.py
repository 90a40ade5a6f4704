"""losstune-generate (ray_jobs/generate.py) on a checkpoint a run wrote in this process."""

import json

import nibabel
import numpy as np
import pytest

from losstune.ray_jobs import generate
from losstune.trainables.registry import load_family
from losstune.trainables.config import merge
from losstune.trainables.engine.loop import train
from losstune.trainables.engine.session import LocalSession


@pytest.fixture(scope="module")
def diffusion_checkpoint(tmp_path_factory):
    """A medgen_diffusion bravo run of one epoch at the smoke size, with EMA weights (what the
    generator uses where a run kept them)."""
    family = load_family("medgen_diffusion")
    config = merge(family.smoke, {"train": {"epochs": 1, "checkpoint_every": 1}, "optim": {"ema_decay": 0.9}})
    session = LocalSession(str(tmp_path_factory.mktemp("run")))
    train(family, config, session)
    return session.checkpoints[-1]


def test_samples_of_a_checkpoint_are_written_as_nifti_with_the_mask_they_were_conditioned_on(diffusion_checkpoint,
                                                                                            tmp_path, capsys):
    out = tmp_path / "generated"
    assert generate.main([diffusion_checkpoint, "--n", "3", "--steps", "2", "--out", str(out)]) == 0
    assert "3 samples (rflow, 2 steps, bravo mode)" in capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"sample_{k:04d}_{kind}" for k in range(3)
                           for kind in ("bravo.nii.gz", "condition.nii.gz", "source.json"))
    # the masks with a tumour first (in order they were all tumour-free on real anatomy), each
    # sample where its validation item lies in the world: its subject's slice, the scan's affine
    # through the run's resize (an identity affine said 1 mm at the origin; data/test_medgen.py
    # checks the affine against a sagittally stored subject)
    sources = [json.loads((out / f"sample_{k:04d}_source.json").read_text()) for k in range(3)]
    tumours = [s["tumour_voxels"] for s in sources]
    assert tumours == sorted(tumours, key=lambda n: n == 0) and tumours[0] > 0
    assert sources[0]["subject"].startswith("subject_") and isinstance(sources[0]["slice"], int)
    for name in ("bravo", "condition"):
        affine = nibabel.load(out / f"sample_0000_{name}.nii.gz").affine
        assert np.allclose(affine, sources[0]["affine"]) and not np.allclose(affine, np.eye(4))
        assert np.allclose(np.linalg.norm(affine[:3, :2], axis=0), sources[0]["voxel_mm"])
    image = nibabel.load(out / "sample_0000_bravo.nii.gz").get_fdata()
    mask = nibabel.load(out / "sample_0000_condition.nii.gz").get_fdata()
    assert image.shape == mask.shape == (32, 32, 1)  # a 2D slice, as a one-slice volume
    assert np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
    assert set(np.unique(mask)) <= {0.0, 1.0}
    # the same seed again gives the same image (up to the float rounding of a batch of 1 against 3)
    again = tmp_path / "again"
    assert generate.main([diffusion_checkpoint, "--n", "1", "--steps", "2", "--out", str(again)]) == 0
    assert np.allclose(nibabel.load(again / "sample_0000_bravo.nii.gz").get_fdata(), image, atol=1e-5)


def test_what_is_no_diffusion_checkpoint_or_would_overwrite_samples_is_refused(diffusion_checkpoint, tmp_path, capsys):
    assert generate.main([str(tmp_path), "--out", str(tmp_path / "g")]) == 2
    assert "holds no losstune_state.json" in capsys.readouterr().err
    other = tmp_path / "hdr"
    other.mkdir()
    (other / "losstune_state.json").write_text(json.dumps({"family": "hdr_patch", "config": {}}))
    assert generate.main([str(other)]) == 2
    assert "is of hdr_patch; only medgen_diffusion generates images" in capsys.readouterr().err
    # a damaged checkpoint (was a JSONDecodeError or KeyError 'config' traceback)
    for damage, expected in [("{not json", "cannot be read (JSONDecodeError"),
                             (json.dumps({"family": "medgen_diffusion"}), "holds no run config")]:
        (other / "losstune_state.json").write_text(damage)
        assert generate.main([str(other)]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "sample_0000_bravo.nii.gz").write_bytes(b"")
    assert generate.main([diffusion_checkpoint, "--out", str(taken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("generate: error: --out:") and err.count("\n") == 1
    assert generate.main([diffusion_checkpoint, "--n", "0"]) == 2
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("mode, files", [
    ("multi", {"bravo", "flair", "t1_pre", "t1_gd", "condition", "source"}),  # one image a sample, named by its modality
    ("seg_conditioned", {"seg", "size_bins", "source"}),  # the mask and the size bins it was generated for
])
def test_samples_of_the_other_modes_are_named_for_what_they_are(tmp_path, mode, files):
    family = load_family("medgen_diffusion")
    config = merge(family.smoke, {"data": {"mode": mode}, "train": {"epochs": 1, "checkpoint_every": 1}})
    session = LocalSession(str(tmp_path / "run"))
    train(family, config, session)
    out = tmp_path / "generated"
    assert generate.main([session.checkpoints[-1], "--n", "8", "--steps", "2", "--out", str(out)]) == 0
    kinds = {p.name.split("_", 2)[2].split(".")[0] for p in out.iterdir()}
    assert kinds <= files and ("size_bins" in kinds) == (mode == "seg_conditioned")
    if mode == "seg_conditioned":
        bins = json.loads((out / "sample_0000_size_bins.json").read_text())
        assert bins["edges_mm"] == [3.0, 6.0, 10.0, 15.0, 20.0, 30.0] and len(bins["counts"]) == 7
