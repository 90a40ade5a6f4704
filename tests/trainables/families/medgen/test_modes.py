"""seed 001's further modes: masks generated conditioned on tumour-size bins (seg_conditioned,
seg_conditioned_input, seg_conditioned_3d) and the compression models' multi_modality, each trained
through the loop in this process (the loop a TorchTrainer runs; through Ray in
tests/ray_jobs/test_medgen_pipeline_integration.py)."""

import math

import pytest
import torch

from losstune.models.medgen import DiffusionNet
from losstune.models.medgen_transformers import DiT
from losstune.trainables.registry import load_family
from losstune.trainables.config import ConfigError, merge
from losstune.trainables.family_api import make_config
from losstune.trainables.families.medgen import compression
from losstune.trainables.families.medgen import diffusion as medgen

DIFFUSION = load_family("medgen_diffusion")
COMPRESSION = load_family("medgen_compression")


def trained(family, overrides, tmp_path) -> dict:
    from losstune.trainables.engine.loop import train
    from losstune.trainables.engine.session import LocalSession

    session = LocalSession(str(tmp_path))
    train(family, overrides, session)
    return session.reports[-1]


@pytest.mark.parametrize("mode, dims", [("seg_conditioned", 2), ("seg_conditioned_input", 2),
                                        ("seg_conditioned_3d", 3)])
def test_each_size_conditioned_mode_trains_and_generates_masks(tmp_path, mode, dims):
    overrides = merge(medgen.SMOKE, {"data": {"mode": mode}, "model": {"spatial_dims": dims},
                                     "train": {"batch_size": 2, "epochs": 1}})
    cfg = make_config(DIFFUSION, overrides)
    model = DIFFUSION.build(cfg).model
    # FiLM: the 7 maps are embedded, the UNet convolves the noisy mask alone; input: 1 + 7 channels
    assert model.unet.conv_in.conv.in_channels == (8 if mode == "seg_conditioned_input" else 1)
    metrics = trained(DIFFUSION, overrides, tmp_path)
    assert metrics["stop_reason"] == "" and math.isfinite(metrics["val/mse"]) and metrics["val/psnr"] > 0


def test_seg_conditioned_3d_is_for_volumes():
    with pytest.raises(ConfigError, match=r"data\.mode seg_conditioned_3d is for volumes: set model\.spatial_dims=3"):
        make_config(DIFFUSION, merge(medgen.SMOKE, {"data": {"mode": "seg_conditioned_3d"}}))


@pytest.mark.parametrize("network", [
    lambda: DiffusionNet(2, 1, 1, (16, 32), (False, True), 1, 8, 8, embedded=7),
    lambda: DiT(2, 1, 1, (16, 16), width=32, depth=2, heads=4, patch=2, embedded=7)])
def test_the_size_bins_reach_the_prediction_through_the_embedding(network):
    torch.manual_seed(0)
    model = network()
    for p in model.parameters():  # DiT's adaLN-Zero starts at 0 whatever its input
        if p.abs().max() == 0:
            torch.nn.init.normal_(p, std=0.2)
    model.eval()
    mask = torch.rand(1, 1, 16, 16)

    def predict(counts):
        maps = torch.tensor(counts, dtype=torch.float32).view(1, 7, 1, 1).expand(1, 7, 16, 16)
        return model(torch.cat([mask, maps], 1), torch.tensor([300]))

    none, two_large = predict([0] * 7), predict([0, 0, 0, 0, 0, 0, 2])
    assert none.shape == (1, 1, 16, 16) and (two_large - none).abs().max() > 1e-4
    assert torch.equal(predict([0] * 7), none)


def test_multi_modality_pools_the_modalities_and_reports_each(tmp_path):
    overrides = merge(compression.SMOKE, {"data": {"mode": "multi_modality"}, "train": {"epochs": 1}})
    cfg = make_config(COMPRESSION, overrides)
    parts = COMPRESSION.build(cfg)
    assert parts.train_set[0][0].shape[0] == 1 and parts.val_set[0][0].shape[0] == 4  # pooled; judged per modality
    metrics = trained(COMPRESSION, overrides, tmp_path)
    assert metrics["stop_reason"] == "" and math.isfinite(metrics["val/l1"])
    for modality in ("bravo", "flair", "t1_pre", "t1_gd"):
        assert metrics[f"val/psnr_{modality}"] > 0, modality
    assert compression.TAGS["val/psnr_flair"] == "Validation/PSNR_flair"


def test_multi_trains_every_modality_with_its_mode_embedding_and_reports_each(tmp_path):
    overrides = merge(medgen.SMOKE, {"data": {"mode": "multi"}, "train": {"batch_size": 4, "epochs": 1}})
    cfg = make_config(DIFFUSION, overrides)
    parts = DIFFUSION.build(cfg)
    image, cond, _ = parts.train_set[0]
    # [image, seg] + the one-hot modality (seed: 2 -> 1 with a mode embedding)
    assert image.shape[0] == 1 and cond.shape[0] == 1 + 4
    assert parts.model.unet.conv_in.conv.in_channels == 2 and parts.model.embedded == 4
    firsts = [parts.train_set[k][1][1:, 0, 0].tolist() for k in range(4)]
    assert firsts == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]  # one slice's four modalities
    metrics = trained(DIFFUSION, overrides, tmp_path)
    assert metrics["stop_reason"] == "" and math.isfinite(metrics["val/mse"])
    for modality in ("bravo", "flair", "t1_pre", "t1_gd"):
        assert metrics[f"val/psnr_{modality}"] > 0 and math.isfinite(metrics[f"val/{modality}_tumor_loss"])


def test_multi_summaries_are_each_modalitys_own_means_by_hand():
    # two items of bravo (PSNR 10 and 20) and one of flair (PSNR 40): bravo's mean 15, flair's 40,
    # t1_pre and t1_gd none (NaN); over the batch, the means of the sums are (10 + 20) / 3 over 2 / 3
    cfg = make_config(DIFFUSION, merge(medgen.SMOKE, {"data": {"mode": "multi"}}))
    means = {"t0.0-0.1": 1.0, **{f"t{b}": 1.0 for b in medgen.BIN_NAMES}, "psnr": 70 / 3,
             "psnr_bravo_wsum": 10.0, "bravo_items": 2 / 3, "psnr_flair_wsum": 40 / 3, "flair_items": 1 / 3,
             "psnr_t1_pre_wsum": 0.0, "t1_pre_items": 0.0, "psnr_t1_gd_wsum": 0.0, "t1_gd_items": 0.0,
             **{f"{region}_{kind}": 1.0 for region in ("tumor", "background", "tiny", "small", "medium", "large")
                for kind in ("sq_sum", "count")},
             **{f"{m}/{region}_{kind}": 1.0 for m in ("bravo", "flair", "t1_pre", "t1_gd")
                for region in ("tumor", "background") for kind in ("sq_sum", "count")}}
    out = medgen.summarise_val(means, cfg)
    assert out["psnr_bravo"] == pytest.approx(15.0) and out["psnr_flair"] == pytest.approx(40.0)
    assert math.isnan(out["psnr_t1_pre"]) and "bravo_items" not in out


def test_the_config_tells_mask_modes_as_the_data_does():
    # medgen_diffusion_config recognises the mask modes by their name (checking a config imports no
    # torch); data.medgen.binary_mode by the images they read: the two must agree for every mode
    from typing import get_args, get_type_hints

    from losstune.data.medgen_modes import binary_mode
    from losstune.trainables.families.medgen.diffusion_config import DataConfig

    modes = get_args(get_type_hints(DataConfig)["mode"])
    assert len(modes) == 8 and all(binary_mode(mode) == mode.startswith("seg") for mode in modes)
