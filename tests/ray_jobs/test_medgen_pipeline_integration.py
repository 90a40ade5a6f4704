"""MedGen's pipeline on a real local Ray (seed 001 "Training Pipeline Order"): a sweep over the
compression model's loss weights, then a sweep of diffusion in the latent space of one of its
checkpoints, each of 2 smoke trials (the default and one sampled); the modes and latents that
need checkpoints or modalities of their own, a trial each."""

import pandas as pd
import pytest

from losstune.ray_jobs import sweep

from tests.tensorboard_view import tensorboard_steps

pytestmark = pytest.mark.integration


def test_compression_weights_then_latent_diffusion(local_ray, tmp_path):
    code = sweep.main(["medgen_compression", "--confirm-top", "0", "--trials", "2", "--smoke-test",
                       "--scheduler", "none", "--storage", str(tmp_path), "--name", "compression"])
    assert code == 0
    trials = pd.read_parquet(tmp_path / "compression" / "trials.parquet")
    assert len(trials) == 2 and (trials["status"] == "COMPLETED").all()
    default = trials[trials["is_default"]].iloc[0]
    assert default["config/loss/weights/kl"] == 1e-6 and default["config/loss/weights/adversarial"] == 0.01
    assert trials["objective"].equals(trials["final/val/l1"])
    for tag in ("Loss/Generator_train", "Loss/L1_val", "Loss/KL_train", "Loss/Adversarial", "Loss/Discriminator",
                "Validation/PSNR", "Validation/MS-SSIM", "LR/Generator", "LR/Discriminator",
                "training/grad_norm_g_avg", "training/grad_norm_d_avg"):
        assert tensorboard_steps(tmp_path / "compression", default["trial_id"], tag) == [1, 2], tag

    checkpoint = trials.loc[trials["objective"].idxmin(), "best_checkpoint"]  # the best trial's best epoch
    code = sweep.main(["medgen_diffusion", "--confirm-top", "0", "--trials", "2", "--smoke-test",
                       "--scheduler", "none", "--storage", str(tmp_path), "--name", "latent",
                       "--set", "representation.name=latent", "--set", f"representation.checkpoint={checkpoint}"])
    assert code == 0
    trials = pd.read_parquet(tmp_path / "latent" / "trials.parquet")
    history = pd.read_parquet(tmp_path / "latent" / "history.parquet")
    assert len(trials) == 2 and (trials["status"] == "COMPLETED").all()
    assert (history["val/psnr"] > 0).all() and (history["val/msssim"] > 0).all()  # decoded to pixel space

    # bravo_seg_cond (seed): bravo's latent beside the mask's, encoded by a seg autoencoder of its own
    code = sweep.main(["medgen_compression", "--confirm-top", "0", "--trials", "1", "--smoke-test", "--scheduler",
                       "none", "--storage", str(tmp_path), "--name", "seg", "--set", "data.mode=seg"])
    assert code == 0
    masks = pd.read_parquet(tmp_path / "seg" / "trials.parquet")["best_checkpoint"].iloc[0]
    code = sweep.main(["medgen_diffusion", "--confirm-top", "0", "--trials", "1", "--smoke-test", "--scheduler", "none",
                       "--storage", str(tmp_path), "--name", "seg_cond", "--set", "data.mode=bravo_seg_cond",
                       "--set", "representation.name=latent", "--set", f"representation.checkpoint={checkpoint}",
                       "--set", f"representation.seg_checkpoint={masks}"])
    assert code == 0
    assert (pd.read_parquet(tmp_path / "seg_cond" / "history.parquet")["val/psnr"] > 0).all()


def test_a_checkpoint_of_another_family_is_refused_before_ray(tmp_path, capsys):
    import json

    (tmp_path / "hdr").mkdir()
    (tmp_path / "hdr" / "losstune_state.json").write_text(json.dumps({"family": "hdr_patch", "config": {}}))
    code = sweep.main(["medgen_diffusion", "--smoke-test", "--storage", str(tmp_path), "--name", "x",
                       "--set", "representation.name=latent", "--set", f"representation.checkpoint={tmp_path / 'hdr'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "representation.checkpoint" in err[0] and "hdr_patch" in err[0]
    assert not (tmp_path / "x").exists()


def test_dc_ae_1_5_then_augmented_latent_diffusion(local_ray, tmp_path):
    # seed "DC-AE 1.5": a DC-AE trained with channel masking, then diffusion in its latent with the
    # matching augmentation, each through Ray's TorchTrainer (the masks are drawn on the workers)
    code = sweep.main(["medgen_compression", "--preset", "dcae", "--space", "structured_latent", "--confirm-top", "0",
                       "--trials", "1", "--smoke-test", "--scheduler", "none", "--storage", str(tmp_path),
                       "--name", "dcae", "--set", "model.dcae.structured_latent=true", "--set", "data.image_size=64"])
    assert code == 0
    trials = pd.read_parquet(tmp_path / "dcae" / "trials.parquet")
    assert (trials["status"] == "COMPLETED").all() and bool(trials["config/model/dcae/structured_latent"].iloc[0])
    checkpoint = trials["best_checkpoint"].iloc[0]
    code = sweep.main(["medgen_diffusion", "--confirm-top", "0", "--trials", "1", "--smoke-test", "--scheduler", "none",
                       "--storage", str(tmp_path), "--name", "augmented", "--set", "representation.name=latent",
                       "--set", f"representation.checkpoint={checkpoint}", "--set", "representation.augmented_diffusion=true",
                       "--set", "data.image_size=64", "--set", "model.widths=[16,32]",
                       "--set", "model.attention=[false,true]"])
    assert code == 0
    history = pd.read_parquet(tmp_path / "augmented" / "history.parquet")
    assert (history["train/mse"] > 0).all() and (history["val/psnr"] > 0).all()


def test_multi_modality_compression_on_real_mri_and_a_missing_modality_refused(local_ray, tmp_path, capsys):
    # seed 001's multi_modality autoencoder (bravo, flair, t1_pre, t1_gd pooled) through Ray's
    # TorchTrainer on subjects of real brain MRI (nibabel's head, its other contrasts remapped from
    # it: tests/data/real_mri.py); a subject without one of the modalities is one line before Ray
    # starts. The diffusion modes that read every modality (multi, seg_conditioned_3d) train in
    # process in tests/trainables/families/medgen/test_modes.py: through Ray they take the path any
    # family takes, which the sweeps above already cover.
    import os

    from tests.data.real_mri import brain_subjects

    subjects = brain_subjects(tmp_path / "subjects", modalities=("bravo", "flair", "t1_pre", "t1_gd"))
    common = ["--trials", "1", "--smoke-test", "--scheduler", "none", "--confirm-top", "0", "--storage", str(tmp_path),
              "--data", subjects, "--set", "train.batch_size=2"]
    assert sweep.main(["medgen_compression", "--preset", "multi_modality", "--name", "multi", *common]) == 0
    history = pd.read_parquet(tmp_path / "multi" / "history.parquet")
    for modality in ("bravo", "flair", "t1_pre", "t1_gd"):
        assert (history[f"val/psnr_{modality}"] > 0).all(), modality

    os.remove(os.path.join(subjects, "subject_002", "t1_gd.nii"))
    capsys.readouterr()
    assert sweep.main(["medgen_compression", "--preset", "multi_modality", "--name", "broken", *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "subject_002 has no t1_gd.nii or t1_gd.nii.gz" in err[0]
    assert not (tmp_path / "broken").exists()
