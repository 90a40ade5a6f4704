import dataclasses
import math

import pytest
import torch
from torch.utils.data import DataLoader

from losstune.models.hdr_patch import HDRPatchModel, log_normalize
from losstune.search_spaces import sample_points
from losstune.trainables.families import hdr_patch
from losstune.trainables.config import ConfigError, merge
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family


def config(overrides=None, preset=""):
    return make_config(load_family("hdr_patch"), merge(hdr_patch.SMOKE, overrides or {}), preset)


class FixedOutput(torch.nn.Module):
    """Stands in for the model: the log image and residual it was given, whatever the input."""

    def __init__(self, log_img, delta_log):
        super().__init__()
        self.out = {"log_img": log_img, "delta_log": delta_log, "pred": torch.exp(log_img + delta_log)}

    def forward(self, inputs):
        return self.out


def test_validation_splits_the_log_error_into_filled_and_hole_pixels_weighted_by_pixel():
    # Two patches of 1 x 2 pixels, 3 channels, target radiance 1 (log 0). Patch 0: pixel 0 is a hole
    # with |log error| 4 in every channel, pixel 1 filled with error 1. Patch 1: no hole, error 2.
    # log_l1 per patch: (4 + 1) / 2 = 2.5 and 2, mean 2.25.
    # filled: patch 0 sums 1 x 3 = 3 over 3 values, patch 1 sums 2 x 6 = 12 over 6: 15 / 9 = 1.6667.
    # holes: 4 x 3 = 12 over 3 values (patch 1 has none): 4. Averaging per-patch means instead
    # would give filled (1 + 2) / 2 = 1.5: the split is pixel-weighted.
    inputs = torch.zeros(2, 7, 1, 2)
    inputs[0, hdr_patch.HOLE_CHANNEL, 0, 0] = 1.0
    error = torch.tensor([[4.0, 1.0], [2.0, 2.0]]).view(2, 1, 1, 2).expand(2, 3, 1, 2)
    model = FixedOutput(torch.zeros(2, 3, 1, 2), error.clone())
    cfg = config()
    per_patch = hdr_patch.val_metrics(model, (inputs, torch.ones(2, 3, 1, 2) - cfg.caps.eps), cfg, {"ceiling": 1e9})
    means = {name: float(values.float().mean()) for name, values in per_patch.items()}
    summary = hdr_patch.summarise_val(means, cfg)
    assert summary["log_l1"] == pytest.approx(2.25, abs=1e-5)
    assert summary["log_l1_valid"] == pytest.approx(15 / 9, abs=1e-5)
    assert summary["log_l1_holes"] == pytest.approx(4.0, abs=1e-5)
    assert summary["overflow_frac"] == 0.0


def test_a_validation_set_without_holes_reports_nan_for_them():
    means = {"log_l1": 0.5, "log_l1_valid_sum": 6.0, "valid_count": 12.0, "log_l1_holes_sum": 0.0,
             "holes_count": 0.0, "overflow_frac": 0.0}
    summary = hdr_patch.summarise_val(means, config())
    assert summary["log_l1_valid"] == 0.5 and math.isnan(summary["log_l1_holes"])


def test_the_synthetic_holes_are_where_a_small_cap_cannot_reach():
    # What the split is for: on the synthetic validation set, the best |log error| any network can
    # reach under Mode A's cap c is mean(max(0, |log target - log input| - c)). At the seed's
    # Phase 1 cap of 6 the hole pixels cannot get within several log units, the filled ones can.
    cfg = config({"data": {"num_val": 64, "patch_size": 32}})
    _, _, inputs, targets = (torch.from_numpy(a) for a in hdr_patch.load_arrays(cfg))
    log_img, _, _ = log_normalize(inputs[:, :3], cfg.caps.eps)
    needed = (torch.log(targets + cfg.caps.eps) - log_img).abs()
    holes = (inputs[:, hdr_patch.HOLE_CHANNEL:hdr_patch.HOLE_CHANNEL + 1] > 0.5).expand_as(needed)
    assert 0.01 < holes.float().mean() < 0.1  # a few percent of the pixels, as a warp leaves
    floor = (needed - 6.0).clamp_min(0.0)
    assert floor[holes].mean() > 3.0 and floor[~holes].mean() < 0.05


def test_the_learnable_scale_is_reported_as_the_seed_asks():
    for per_channel, names in ((False, {"residual_output_scale"}),
                               (True, {"residual_output_scale", "residual_output_scale_r",
                                       "residual_output_scale_g", "residual_output_scale_b"})):
        cfg = config({"model": {"scale_per_channel": per_channel}}, preset="phase2")
        parts = hdr_patch.build(cfg)
        batch = next(iter(DataLoader(parts.train_set, batch_size=4)))
        _, health = hdr_patch.loss_terms(parts.model, batch, cfg)
        assert names <= set(health)
        for name in names:
            assert float(health[name]) == pytest.approx(6.0)  # the seed's init


def test_the_adaptive_scalers_mean_is_reported_and_a_fixed_cap_reports_nothing():
    reported = {}
    for preset, expected in (("phase3_adaptive", {"adaptive_scale"}), ("phase1", set())):
        cfg = config(preset=preset)
        parts = hdr_patch.build(cfg)
        batch = next(iter(DataLoader(parts.train_set, batch_size=4)))
        _, health = hdr_patch.loss_terms(parts.model, batch, cfg)
        assert set(health) - {"tanh_saturation"} == expected
        reported[preset] = health
    # an untrained scaler starts in the middle of [2, 10] (models/hdr_patch.py), not stuck at 2
    assert float(reported["phase3_adaptive"]["adaptive_scale"]) == pytest.approx(6.0)


def test_phase_presets_are_the_seeds_action_plan():
    phase1 = make_config(load_family("hdr_patch"), preset="phase1")
    phase2 = make_config(load_family("hdr_patch"), preset="phase2")
    assert phase2.caps == phase1.caps and phase2.loss == phase1.loss
    assert (phase2.model.learnable_scale, phase2.model.scale_init) == (True, 6.0)
    adaptive = make_config(load_family("hdr_patch"), preset="phase3_adaptive")
    assert adaptive.model.adaptive_scaler and (adaptive.model.scaler_min, adaptive.model.scaler_max) == (2.0, 10.0)
    assert adaptive.loss == phase1.loss
    layernorm = make_config(load_family("hdr_patch"), preset="phase3_layernorm")
    # seed 5.2: tanh(output_norm(residual)) * 8.0
    assert layernorm.model.output_norm and layernorm.caps.alpha * layernorm.caps.abs_max == 8.0


def test_per_channel_scale_needs_the_learnable_scale():
    with pytest.raises(ConfigError, match="model.scale_per_channel is a form of the learnable scale"):
        make_config(load_family("hdr_patch"), {"model": {"scale_per_channel": True}})


def test_the_caps_space_offers_the_seeds_alternatives_to_the_fixed_cap():
    points = sample_points(load_family("hdr_patch").spaces["caps"], 200)
    for key in ("model/output_norm", "model/adaptive_scaler", "model/scale_per_channel"):
        assert {point[key] for point in points if key in point} == {False, True}, key


def field_paths(config, prefix=""):
    """Every leaf field of a nested config as a dotted path."""
    paths = set()
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        paths |= field_paths(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else {prefix + f.name}
    return paths


def test_the_seeds_rejected_dynamic_cap_and_kl_term_are_not_offered():
    # Seed 004 sections 2 and 3 reject both proposals; neither may exist as a config field, a loss
    # term, a cap mode or a search-space parameter.
    fields = field_paths(hdr_patch.Config())
    assert "loss.weights.histogram" in fields  # the seed's own alternative to KL (3.4 A) is there
    assert not any("dynamic" in name or name.split(".")[-1] == "kl" for name in fields)
    terms = load_family("hdr_patch").term_weights(hdr_patch.Config())  # a superset of what it computes
    assert not any("kl" in term for term in terms)
    for overrides in ({"caps": {"mode": "dynamic"}}, {"caps": {"dynamic_cap": True}},
                      {"loss": {"weights": {"kl": 0.1}}}):
        with pytest.raises(ConfigError):
            make_config(load_family("hdr_patch"), overrides)
    with pytest.raises(ValueError, match="mode must be 'A' or 'B'"):
        HDRPatchModel(mode="dynamic")
    space_keys = {key for space in load_family("hdr_patch").spaces.values()
                  for point in sample_points(space, 50) for key in point}
    assert not any("dynamic" in key or key.endswith("/kl") for key in space_keys)


def test_the_proposed_dynamic_cap_is_mode_b_already():
    # Seed 2.2: log_delta_scale * denom.mean(dim=[1, 2, 3], keepdim=True) on a [B, 1, 1, 1] denom
    # changes nothing, so the "dynamic cap" is Mode B's cap, patch by patch.
    x = torch.rand(3, 7, 8, 8) * torch.tensor([1.0, 10.0, 1000.0]).view(3, 1, 1, 1)
    _, _, denom = log_normalize(x[:, :3], 1e-6)
    proposed = 0.9 * denom.mean(dim=[1, 2, 3], keepdim=True)
    mode_b = HDRPatchModel(channels=(8, 16), mode="B", log_delta_scale=0.9)(x)["cap"]
    assert torch.equal(proposed, mode_b)


def test_patches_the_unet_cannot_halve_exactly_are_refused_naming_the_file(tmp_path):
    import numpy as np

    # the default model.channels (16, 32, 64): 3 levels halve a patch twice, so sides must be multiples
    # of 4. 30 -> 15 -> 8 on the way down and 8 -> 16 on the way up: the skip connection cannot join 16 to 15
    def patches_file(name, height, width):
        path = tmp_path / f"{name}.npz"
        np.savez(path, input=np.ones((10, 7, height, width), np.float32), target=np.ones((10, 3, height, width), np.float32))
        return str(path)

    full = {"data": {"path": patches_file("odd", 30, 30)}, "model": {"channels": [16, 32, 64]}}
    with pytest.raises(ConfigError, match=r"data.path has 30x30 patches, which do not fit model.channels \[16, 32, 64\]"
                                          r": its 3 levels halve them 2 times, so every side must be a multiple of 4"):
        hdr_patch.check_data(config(full))
    assert hdr_patch.check_data(config(merge(full, {"data": {"path": patches_file("even", 28, 40)}}))) == 8
    model = HDRPatchModel(channels=(16, 32, 64))
    assert model(torch.ones(2, 7, 28, 40))["pred"].shape == (2, 3, 28, 40)
    with pytest.raises(RuntimeError, match="Sizes of tensors must match"):  # what the trial would have met
        model(torch.ones(2, 7, 30, 30))


def test_a_synthetic_patch_size_must_fit_the_unets_levels():
    # 4 levels halve a patch 3 times: 36 is a multiple of 4 (the synthetic guide's factor) but not of 8
    with pytest.raises(ConfigError, match=r"data.patch_size 36: 36x36 patches do not fit model.channels \[8, 16, 32, 64\]"):
        config({"data": {"patch_size": 36}, "model": {"channels": [8, 16, 32, 64]}})
    assert config({"data": {"patch_size": 40}, "model": {"channels": [8, 16, 32, 64]}}).data.patch_size == 40
    # a real file's patches are checked against its own sizes (above), not against patch_size
    assert config({"data": {"path": "x.npz", "patch_size": 36}, "model": {"channels": [8, 16, 32, 64]}}).data.path
