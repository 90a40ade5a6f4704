import math

import pytest
import torch
from torch.utils.data import DataLoader

from losstune.trainables.families import lgt
from losstune.trainables.config import ConfigError, merge
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family


def config(overrides=None, preset=""):
    return make_config(load_family("lgt"), merge(lgt.SMOKE, overrides or {}), preset)


def test_defaults_are_the_seeds_after_values():
    cfg = lgt.Config()
    assert (cfg.train.batch_size, cfg.flow.label_drop_prob, cfg.loss.max_samples, cfg.loss.max_spatial_samples,
            cfg.flow.use_gradient_checkpointing, cfg.flow.cfg_scale, cfg.optim.grad_clip) == (
        48, 0.15, 8192, 256, True, 2.0, 1.0)


@pytest.mark.parametrize("scale, log_ratio, style, content", [
    (2.0, 0.0, 1.0, 1.0),  # the default: w_style = w_content = 1
    # ratio e^log(3) = 3 and sum 4: style 3, content 1
    (4.0, math.log(3.0), 3.0, 1.0),
])
def test_style_and_content_weights_from_ratio_and_scale(scale, log_ratio, style, content):
    weights = lgt.term_weights(config({"loss": {"weights": {"energy_scale": scale, "log_style_to_content": log_ratio}}}))
    assert weights["style"] == pytest.approx(style) and weights["content"] == pytest.approx(content)


def test_loss_terms_with_and_without_the_regularisers():
    cfg = config()
    parts = lgt.build(cfg)
    batch = next(iter(DataLoader(parts.train_set, batch_size=4)))
    terms, health = lgt.loss_terms(parts.model, batch, cfg)
    assert set(terms) == {"style", "content"} and set(health) == {"velocity_norm"}
    cfg = config(preset="regularised")
    terms, _ = lgt.loss_terms(parts.model, batch, cfg)
    assert set(terms) == {"style", "content", "velocity", "divergence"}
    assert all(value.requires_grad for value in terms.values())


def test_validation_pairs_are_fixed_and_target_another_style():
    cfg = config()
    val = lgt.build(cfg).val_set
    first, again = val[3], val[3]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    x_src, style, target, refs = first
    assert target != style and refs.shape == (lgt.VAL_REFERENCES, *x_src.shape)
    for ref in refs:  # each reference is a held-out latent of the target style
        assert any(torch.equal(ref, val.latents[i]) for i in val.cache[int(target)])


def test_validation_metrics_of_the_identity_flow():
    # an untrained flow (MONAI zero-initialises the output) returns x_src: identity ratio 1, content 0
    cfg = config()
    parts = lgt.build(cfg)
    batch = next(iter(DataLoader(parts.val_set, batch_size=8)))
    values = lgt.val_metrics(parts.model, batch, cfg, {})
    assert torch.allclose(values["identity_ratio"], torch.ones(8))
    assert torch.all(values["content_ssm"] == 0) and torch.all(values["style_swd"] > 0)
    torch.testing.assert_close(values["energy"], values["style_swd"] + values["content_ssm"])


@pytest.mark.parametrize("epoch, ratio, velocity, reason", [
    (3, 1.0, 0.0, ""),  # within the grace epochs nothing stops
    (4, 1.0, 0.5, "identity_mapping"),
    (4, 0.5, 0.0, "velocity_collapse"),
    (4, 0.5, 0.5, ""),
])
def test_stop_reasons(epoch, ratio, velocity, reason):
    metrics = {"epoch": epoch, "health/identity_ratio": ratio, "health/velocity_norm": velocity}
    assert lgt.stop_reason(metrics, lgt.Config()) == reason


@pytest.mark.parametrize("overrides, message", [
    ({"data": {"num_styles": 1}}, "data.num_styles must be >= 2"),
    ({"model": {"widths": [16, 20]}}, "model.widths must all be multiples of norm_groups=8"),
    ({"model": {"attention": [False]}}, "model.attention needs one flag per width"),
    ({"flow": {"cfg_scale": 0.5}}, "flow.cfg_scale must be >= 1.0"),
    ({"loss": {"weights": {"energy_scale": 0}}}, "loss.weights.energy_scale must be > 0"),
    # 3 widths halve a latent twice: 30 -> 15 -> 8 down, 8 -> 16 up, and the skip connection cannot join 16 to 15
    ({"data": {"size": 30}, "model": {"widths": [16, 16, 16], "attention": [False, False, True]}},
     r"data.size 30: 30x30 latents do not fit model.widths \[16, 16, 16\]: its 3 levels halve them 2 times"),
])
def test_bad_values_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config(overrides)


def test_latents_the_unet_cannot_halve_exactly_are_refused_naming_the_file(tmp_path):
    import numpy as np

    path = tmp_path / "latents.npz"  # the smoke UNet's 2 widths halve once: 33 is odd
    np.savez(path, latents=np.zeros((16, 4, 33, 33), np.float32), style_ids=np.arange(16) % 4)
    with pytest.raises(ConfigError, match=r"data.path has 33x33 latents, which do not fit model.widths \[16, 16\]"):
        lgt.check_data(config({"data": {"path": str(path)}}))
    np.savez(path, latents=np.zeros((16, 4, 34, 30), np.float32), style_ids=np.arange(16) % 4)
    assert lgt.check_data(config({"data": {"path": str(path)}})) == 12  # one of each style's 4 held out
