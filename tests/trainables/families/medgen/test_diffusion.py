import importlib.util
import math
import re

import pytest
import torch
from torch.utils.data import DataLoader

from losstune.trainables.families.medgen import diffusion as medgen
from losstune.trainables.families.medgen import diffusion_val as validation
from losstune.trainables.families.medgen import items as medgen_items
from losstune.trainables.families.medgen import steps
from losstune.trainables.config import ConfigError, merge
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family


def config(overrides=None, preset=""):
    return make_config(load_family("medgen_diffusion"), merge(medgen.SMOKE, overrides or {}), preset)


def first_batch(dataset, size=4):
    return next(iter(DataLoader(dataset, batch_size=size)))


def test_defaults_are_the_seeds():
    cfg = medgen.Config()
    assert cfg.model.widths == (128, 256, 256) and cfg.model.attention == (False, True, True)
    assert cfg.model.res_blocks == 1 and cfg.strategy.name == "rflow" and cfg.strategy.num_train_timesteps == 1000
    assert cfg.optim.lr == 1e-4 and cfg.schedule.kind == "cosine" and cfg.schedule.warmup_epochs == 5
    assert cfg.optim.lr * cfg.schedule.eta_min_factor == pytest.approx(1e-6)  # eta_min
    assert cfg.loss.perceptual_weight == 0.0 and cfg.loss.min_snr_gamma == 0.0
    r = cfg.regularisation
    assert (r.curriculum_warmup_epochs, r.curriculum_start, r.curriculum_end) == (50, (0.0, 0.3), (0.0, 1.0))
    assert (r.jitter_std, r.noise_augmentation_std, r.feature_std, r.feature_layers) == (0.05, 0.1, 0.1, ("mid",))
    assert (r.self_conditioning_prob, r.self_conditioning_weight) == (0.5, 0.1)
    regularised = make_config(load_family("medgen_diffusion"), preset="regularised").optim
    assert (regularised.grad_noise_sigma, regularised.grad_noise_decay) == (0.01, 0.55)
    assert make_config(load_family("medgen_diffusion"), preset="sam").optim.sam_rho == 0.05


@pytest.mark.parametrize("overrides, message", [
    ({"loss": {"perceptual_weight": 0.001}}, "loss.perceptual_weights_path is required when loss.perceptual_weight > 0"),
    ({"loss": {"perceptual_weights_path": "/nowhere/resnet50.pt"}}, "loss.perceptual_weights_path /nowhere/resnet50.pt: no such file"),
    ({"model": {"spatial_dims": 4}}, "model.spatial_dims must be 2 or 3, got 4"),
    ({"regularisation": {"feature_layers": ["middle"]}}, "regularisation.feature_layers must be some of"),
    ({"regularisation": {"curriculum_start": [0.5, 0.2]}}, "regularisation.curriculum_start must be"),
    ({"data": {"volume": [32, 32]}}, "data.volume must be 3 sizes"),
    ({"data": {"mode": "triple"}}, "data.mode must be one of"),
    ({"strategy": {"name": "edm"}}, "strategy.name must be one of"),
    # the smoke UNet's 3 widths halve an image twice: 30 -> 15 -> 8 down, 8 -> 16 up, and the skip
    # connection cannot join 16 to 15 (the trial failed there)
    ({"data": {"image_size": 30}}, "data.image_size 30: 30x30 images do not fit model.widths [16, 32, 32]: its 3 "
                                   "levels halve them 2 times, so every side must be a multiple of 4"),
    ({"model": {"spatial_dims": 3}, "data": {"volume": [32, 32, 30]}}, "data.volume [32, 32, 30]: 32x32x30 images"),
])
def test_bad_values_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config(overrides)


def test_an_image_size_the_unet_halves_exactly_trains():
    cfg = config({"data": {"image_size": 36}})  # 36 -> 18 -> 9 and back
    parts = medgen.build(cfg)
    terms, _ = medgen.loss_terms(parts.model, first_batch(parts.train_set, 2), cfg)
    assert first_batch(parts.train_set, 2)[0].shape[-2:] == (36, 36) and torch.isfinite(terms["mse"])


def test_seg_mode_turns_the_perceptual_loss_off():
    cfg = config({"data": {"mode": "seg"}, "loss": {"perceptual_weight": 0.001}})  # no path needed
    assert not steps.uses_perceptual(cfg)


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_a_perceptual_weight_without_torchvision_fails_before_ray(tmp_path):
    weights = tmp_path / "resnet50.pt"
    weights.write_bytes(b"")
    cfg = config({"loss": {"perceptual_weight": 0.001, "perceptual_weights_path": str(weights)}})
    with pytest.raises(ConfigError, match="loss.perceptual_weight > 0 needs torchvision"):
        medgen.check_data(cfg)


def test_subjects_are_held_out_whole():
    cfg = config({"data": {"subjects": 5}})
    train, val = medgen.subject_split(cfg, cfg.data.mode)
    assert [s.name for s in val] == ["subject_004"] and {s.name for s in train}.isdisjoint({s.name for s in val})


def test_loss_terms_of_the_regularised_preset():
    torch.manual_seed(0)
    cfg = config({"regularisation": {"self_conditioning_prob": 1.0}}, preset="regularised")
    parts = medgen.build(cfg)
    torch.nn.init.normal_(parts.model.unet.out[-1].conv.weight)  # MONAI starts it at 0: a zero prediction
    terms, health = medgen.loss_terms(parts.model, first_batch(parts.train_set), cfg)
    assert set(terms) == {"mse", "self_cond"} and all(torch.isfinite(v) for v in terms.values())
    assert terms["self_cond"] > 0  # feature perturbation makes the two passes differ
    terms["mse"].backward()
    assert parts.model.unet.conv_in.conv.weight.grad is not None


def test_self_conditioning_is_zero_without_a_random_forward_pass():
    torch.manual_seed(0)
    cfg = config({"regularisation": {"self_conditioning": True, "self_conditioning_prob": 1.0}})
    parts = medgen.build(cfg)
    torch.nn.init.normal_(parts.model.unet.out[-1].conv.weight)  # a non-trivial prediction
    terms, _ = medgen.loss_terms(parts.model, first_batch(parts.train_set), cfg)
    assert terms["self_cond"].item() == 0.0


def test_the_curriculum_keeps_early_times_clean():
    torch.manual_seed(0)
    cfg = config({"regularisation": {"curriculum": True}, "strategy": {"name": "ddpm"}})
    scheduler = steps.scheduler_of(cfg)
    x0 = torch.zeros(4000, 1, 2, 2)
    assert steps.training_times(cfg, scheduler, x0, epoch=0).max() <= 0.3  # seed: [0, 0.3] at the start
    assert steps.training_times(cfg, scheduler, x0, epoch=50).max() > 0.99  # [0, 1] after 50 epochs


def test_min_snr_reweights_the_mse():
    cfg_plain, cfg_snr = config(), config({"loss": {"min_snr_gamma": 5.0}})
    parts = medgen.build(cfg_plain)
    batch = first_batch(parts.train_set)
    torch.manual_seed(3)
    plain, plain_stats = medgen.loss_terms(parts.model, batch, cfg_plain)
    torch.manual_seed(3)
    weighted, weighted_stats = medgen.loss_terms(parts.model, batch, cfg_snr)
    assert weighted["mse"] < plain["mse"]  # min(SNR, 5) / SNR <= 1, < 1 wherever SNR > 5
    # the seed's Loss/MSE_train is the plain MSE in both, comparable across gammas; the weighted
    # term is reported beside it
    assert weighted_stats["mse_plain"] == plain_stats["mse_plain"] == plain["mse"]
    assert medgen.TAGS["health/mse_plain"] == "Loss/MSE_train" and medgen.TAGS["train/mse"] == "Loss/MSE_train_min_snr"


def test_validation_draws_are_fixed_per_item():
    cfg = config()
    parts = medgen.build(cfg)
    a, b = parts.val_set[1], parts.val_set[1]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert a[3].shape == (validation.BINS, *a[0].shape) and not torch.equal(a[3], parts.val_set[0][3])


def test_validation_metrics_are_deterministic_and_named_for_the_seed():
    cfg = config()
    parts = medgen.build(cfg)
    parts.model.eval()
    batch = first_batch(parts.val_set)
    first = medgen.val_metrics(parts.model, batch, cfg, {})
    again = medgen.val_metrics(parts.model, batch, cfg, {})
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert {f"t{name}" for name in medgen.BIN_NAMES} <= set(first) and first["mse"].shape == (4,)
    mean_of_bins = torch.stack([first[f"t{name}"] for name in medgen.BIN_NAMES]).mean(0)
    assert torch.allclose(first["mse"], mean_of_bins)
    assert medgen.OBJECTIVE.metric == "val/mse" and medgen.TAGS["val/mse"] == "Loss/MSE_val"
    assert medgen.TAGS["val/t0.0-0.1"] == "Timestep/0.0-0.1" and medgen.TAGS["val/t0.9-1.0"] == "Timestep/0.9-1.0"


def test_summarise_val_weights_regions_by_pixel_and_rates_the_bins():
    # tumour: 2.0 squared error over 4 pixels -> 0.5; background 1.0 over 10 -> 0.1; ratio 5.
    # bins 1, 1, ..., 1, 300: median 1, worst 300 -> ratio 300
    sums = {"tumor_sq_sum": 2.0, "tumor_count": 4.0, "background_sq_sum": 1.0, "background_count": 10.0}
    # by tumour size: tiny tumours 3.0 over 6 pixels -> 0.5; small 4.0 over 2 -> 2.0; no medium or large
    sizes = {"tiny_sq_sum": 3.0, "tiny_count": 6.0, "small_sq_sum": 4.0, "small_count": 2.0, "medium_sq_sum": 0.0,
             "medium_count": 0.0, "large_sq_sum": 0.0, "large_count": 0.0}
    means = {**sums, **{f"bravo/{k}": v for k, v in sums.items()}, "mse": 1.0,
             **{f"t{name}": 1.0 for name in medgen.BIN_NAMES}, **sizes}
    means["t0.0-0.1"] = 300.0
    out = medgen.summarise_val(means, config())
    assert out["tiny_loss"] == 0.5 and out["small_loss"] == 2.0 and math.isnan(out["large_loss"])
    assert medgen.TAGS["val/tiny_loss"] == "regional/tiny" and medgen.TAGS["val/large_loss"] == "regional/large"
    assert out["tumor_loss"] == 0.5 and out["background_loss"] == 0.1 and out["tumor_bg_ratio"] == pytest.approx(5.0)
    assert out["bravo_tumor_loss"] == 0.5 and medgen.TAGS["val/bravo_tumor_loss"] == "regional_bravo/tumor_loss"
    assert out["timestep_bin_ratio"] == 300.0 and not any(k.endswith(("_sq_sum", "_count")) for k in out)
    assert math.isnan(medgen.summarise_val(dict(means, tumor_count=0.0), config())["tumor_loss"])


@pytest.mark.parametrize("limit, epoch, ratio, reason", [
    (0.0, 5, 1e4, ""),  # the default reports the ratio and never stops on it: the seed calls early-t losses normal
    (100.0, 1, 500.0, ""), (100.0, 2, 99.0, ""), (100.0, 2, 101.0, "timestep_bin_blowup"),  # an opt-in limit
])
def test_the_timestep_bin_ratio_stops_only_where_a_limit_is_set(limit, epoch, ratio, reason):
    cfg = config({"health": {"max_bin_ratio": limit}})
    assert medgen.stop_reason({"epoch": epoch, "health/timestep_bin_ratio": ratio}, cfg) == reason


def test_a_tiny_3d_run_through_the_loop(tmp_path):
    # in this process (LocalSession): the loop and its reports are the ones a TorchTrainer runs
    from losstune.trainables.engine.loop import train
    from losstune.trainables.engine.session import LocalSession

    overrides = merge(medgen.SMOKE, {"model": {"spatial_dims": 3}, "train": {"batch_size": 2, "epochs": 2}})
    session = LocalSession(str(tmp_path))
    train(load_family("medgen_diffusion"), overrides, session)
    metrics = session.reports[-1]
    assert metrics["epoch"] == 2 and metrics["stop_reason"] == ""
    assert math.isfinite(metrics["val/mse"]) and 0 < metrics["val/msssim"] <= 1
    assert math.isfinite(metrics["val/tumor_loss"])  # the phantom volumes have tumours


def test_self_conditioning_term_by_hand():
    # prediction 1 everywhere, the no-gradient second pass 0.5: MSE = (1 - 0.5)^2 = 0.25; with
    # probability 0 the term is 0 and the second pass is not run
    prediction = torch.ones(2, 1, 4, 4)
    passes = []

    def second_pass():
        passes.append(1)
        return torch.full_like(prediction, 0.5)

    assert steps.self_conditioning(second_pass, prediction, prob=1.0).item() == 0.25
    assert steps.self_conditioning(second_pass, prediction, prob=0.0).item() == 0.0
    assert len(passes) == 1


def test_the_prediction_is_monais_inferer_on_the_noised_image_with_its_conditioning():
    # DiffusionInferer (concat mode) against the pipeline by hand: x_t from the scheduler, the
    # conditioning concatenated, the network's forward
    cfg = config()
    parts = medgen.build(cfg)
    torch.nn.init.normal_(parts.model.unet.out[-1].conv.weight)  # MONAI zero-initialises the output conv
    x0, cond, _ = next(iter(DataLoader(parts.train_set, batch_size=2)))
    scheduler = steps.scheduler_of(cfg)
    noise, timesteps = torch.randn_like(x0), torch.tensor([100.0, 700.0])
    by_hand = parts.model(torch.cat([scheduler.add_noise(x0, noise, timesteps), cond], dim=1), timesteps)
    assert torch.allclose(steps.predict(parts.model, x0, noise, timesteps, cond, scheduler), by_hand)


def test_the_volume_perceptual_loss_looks_at_a_quarter_of_the_slices(monkeypatch, tmp_path):
    # seed "3D VAE": "2.5D perceptual loss (sample 25% slices)"; MONAI's default ratio is 0.5
    import sys
    import types

    import monai.losses

    built = {}

    class Recorder(torch.nn.Module):
        def __init__(self, **kwargs):
            super().__init__()
            built.update(kwargs)

    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setattr(monai.losses, "PerceptualLoss", Recorder)
    steps.perceptual_network.cache_clear()
    steps.perceptual_network(3, str(tmp_path / "resnet50.pt"))
    steps.perceptual_network.cache_clear()
    assert built["is_fake_3d"] and built["fake_3d_ratio"] == 0.25


def test_seg_mode_keeps_the_tumour_free_slices_a_mask_generator_must_learn():
    # bravo: slices without image signal (outside the head) are left out; seg: every slice stays,
    # also those whose mask is empty (tumour-free), which are most of them
    seg = medgen.build(config({"data": {"mode": "seg"}})).train_set
    empty = sum(float(seg[i][0].max()) == 0.0 for i in range(len(seg)))
    assert 0 < empty < len(seg)
    subjects, _ = medgen.subject_split(config({"data": {"mode": "seg"}}), "seg")
    assert len(seg) == len(subjects) * medgen.SMOKE["data"]["phantom_shape"][2]  # all slices
    bravo = medgen.build(config()).train_set
    assert len(bravo) < len(seg)


def test_estimate_quality_per_modality_by_hand():
    # dual mode, x0 = 0; every bin's estimate 0.1 in t1_pre and 0.3 in t1_gd, no tumour.
    # L1: (0.1 + 0.3) / 2 = 0.2. PSNR = 10 log10(1 / MSE): t1_pre 10 log10(100) = 20,
    # t1_gd 10 log10(1 / 0.09) = 10.458; overall, of the pooled MSE 0.05, 13.010. Background squared error
    # (0.01 + 0.09) / 2 = 0.05 overall, 0.01 and 0.09 per modality.
    cfg = config({"data": {"mode": "dual"}, "eval": {"msssim": False}})
    x0 = torch.zeros(1, 2, 8, 8)
    estimate = torch.cat([torch.full((1, 1, 8, 8), 0.1), torch.full((1, 1, 8, 8), 0.3)], dim=1)
    out = validation.estimate_quality([estimate] * validation.BINS, x0, torch.zeros(1, 1, 8, 8), torch.ones(1, 2), cfg)
    assert float(out["l1"]) == pytest.approx(0.2)
    assert float(out["psnr_t1_pre"]) == pytest.approx(20.0, abs=1e-4)
    assert float(out["psnr_t1_gd"]) == pytest.approx(10 * math.log10(1 / 0.09), abs=1e-4)
    assert float(out["psnr"]) == pytest.approx(10 * math.log10(1 / 0.05), abs=1e-4)
    means = {k: float(v) for k, v in out.items()}
    summary = medgen.summarise_val({**means, **{f"t{name}": 1.0 for name in medgen.BIN_NAMES}}, cfg)
    assert summary["background_loss"] == pytest.approx(0.05)
    assert summary["t1_pre_background_loss"] == pytest.approx(0.01)
    assert summary["t1_gd_background_loss"] == pytest.approx(0.09)
    for name in ("psnr_t1_pre", "psnr_t1_gd", "l1", "t1_gd_background_loss"):
        assert f"val/{name}" in medgen.TAGS
    assert medgen.TAGS["val/psnr_t1_pre"] == "Validation/PSNR_t1_pre" and medgen.TAGS["val/l1"] == "Loss/L1_val"


def test_lpips_is_reported_per_modality_where_its_weights_are_given(tmp_path):
    from tests.models.test_feature_extractors import torchvision_layout_alexnet

    torchvision_layout_alexnet(tmp_path / "alexnet.pth")
    cfg = config({"data": {"mode": "dual"}, "eval": {"msssim": False, "lpips_weights": str(tmp_path / "alexnet.pth")}})
    medgen.check_data(cfg)  # the file is read once here, before Ray starts
    torch.manual_seed(0)
    x0 = torch.rand(2, 2, 32, 32)
    noisy = (x0 + 0.2 * torch.randn_like(x0)).clamp(0, 1)
    out = validation.estimate_quality([noisy] * validation.BINS, x0, torch.zeros(2, 1, 32, 32), torch.ones(2, 2), cfg)
    assert out["lpips"].shape == (2,) and (out["lpips"] > 0).all()
    assert torch.allclose(out["lpips"], (out["lpips_t1_pre"] + out["lpips_t1_gd"]) / 2, atol=1e-6)
    same = validation.estimate_quality([x0] * validation.BINS, x0, torch.zeros(2, 1, 32, 32), torch.ones(2, 2), cfg)
    assert torch.equal(same["lpips"], torch.zeros(2))
    assert medgen.TAGS["val/lpips"] == "Validation/LPIPS" and medgen.TAGS["val/lpips_t1_gd"] == "Validation/LPIPS_t1_gd"
    assert "lpips" not in validation.estimate_quality([x0] * validation.BINS, x0, torch.zeros(2, 1, 32, 32), torch.ones(2, 2),
                                                  config({"data": {"mode": "dual"}}))  # the default: not computed


@pytest.mark.parametrize("overrides, message", [
    ({"model": {"spatial_dims": 3}, "data": {"volume": [32, 32, 32]}}, "LPIPS is 2D only"),
    ({"data": {"mode": "seg"}}, "LPIPS judges images, not masks"),
])
def test_lpips_is_refused_for_volumes_and_masks_before_ray(tmp_path, overrides, message):
    from tests.models.test_feature_extractors import torchvision_layout_alexnet

    torchvision_layout_alexnet(tmp_path / "alexnet.pth")
    cfg = config(merge(overrides, {"eval": {"lpips_weights": str(tmp_path / "alexnet.pth")}}))
    with pytest.raises(ConfigError, match=f"eval.lpips_weights.*{message}"):
        medgen.check_data(cfg)


def test_an_lpips_file_that_is_missing_or_no_alexnet_is_one_line_naming_it(tmp_path):
    for path in (tmp_path / "missing.pth", tmp_path / "other.pth"):
        if path.name == "other.pth":
            torch.save({"features.0.weight": torch.zeros(1)}, path)
        with pytest.raises(ConfigError, match=f"eval.lpips_weights.*{path.name}") as raised:
            medgen.check_data(config({"eval": {"lpips_weights": str(path)}}))
        assert "\n" not in str(raised.value)


def test_volumes_report_slicewise_and_volumetric_ms_ssim():
    cfg = config({"model": {"spatial_dims": 3}, "data": {"volume": [32, 32, 32]}})
    x0 = torch.rand(1, 1, 32, 32, 32)
    out = validation.estimate_quality([x0.clone()] * validation.BINS, x0, torch.zeros_like(x0), torch.ones(1, 3), cfg)
    assert float(out["msssim"]) == pytest.approx(1.0, abs=1e-4) and float(out["msssim_3d"]) == pytest.approx(1.0, abs=1e-4)
    noisy = (x0 + 0.2 * torch.randn_like(x0)).clamp(0, 1)
    out = validation.estimate_quality([noisy] * validation.BINS, x0, torch.zeros_like(x0), torch.ones(1, 3), cfg)
    assert 0 < float(out["msssim"]) < 1 and 0 < float(out["msssim_3d"]) < 1
    assert medgen.TAGS["val/msssim_3d"] == "Validation/MS-SSIM-3D" and "msssim_3d_bravo" in out


@pytest.fixture()
def subjects(tmp_path):
    from losstune.data.medgen_phantoms import write_phantoms

    return write_phantoms(str(tmp_path / "subjects"), 3, (24, 24, 12), seed=0)


def test_check_data_reads_every_file_before_ray_and_the_trial_finds_it_cached(subjects, monkeypatch):
    from losstune.data import medgen as medgen_data

    cfg = config({"data": {"path": subjects}})
    train_items = medgen.check_data(cfg)  # 2 training subjects x their non-empty axial slices
    assert train_items == len(medgen_items.training_items(cfg, medgen_data.load_volumes(medgen.subject_split(cfg, "bravo")[0], "bravo"), "bravo"))
    monkeypatch.setattr(medgen_data, "read_volume", lambda *a: pytest.fail("a trial read a file again"))
    parts = medgen.build(cfg)
    assert len(parts.train_set) == train_items  # headers are read again (cheap), voxels not


@pytest.mark.parametrize("damage, message", [
    ("corrupt", "bravo.nii.gz: subject subject_001: cannot read"),
    ("nan", "bravo.nii.gz: subject subject_001: 3 non-finite voxels"),
])
def test_a_bad_file_is_one_line_from_check_data(subjects, damage, message):
    import nibabel
    import numpy as np

    from losstune.data import DataError

    path = f"{subjects}/subject_001/bravo.nii.gz"
    if damage == "corrupt":
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])  # truncated, as an interrupted copy leaves it
    else:
        volume = nibabel.load(path).get_fdata().astype(np.float32)
        volume[0, 0, :3] = np.nan
        nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), path)
    with pytest.raises(DataError, match=message) as err:
        medgen.check_data(config({"data": {"path": subjects}}))
    assert "\n" not in str(err.value)


def test_a_blank_held_out_subject_is_refused_naming_its_file(subjects):
    import nibabel
    import numpy as np

    from losstune.data import DataError

    for modality in ("bravo", "seg"):  # the held-out subject, blank
        path = f"{subjects}/subject_002/{modality}.nii.gz"
        nibabel.save(nibabel.Nifti1Image(np.zeros((24, 24, 12), np.float32), np.eye(4)), path)
    with pytest.raises(DataError, match=r"subject_002/bravo.nii.gz: subject subject_002: bravo is constant at 0"):
        medgen.check_data(config({"data": {"path": subjects}}))
