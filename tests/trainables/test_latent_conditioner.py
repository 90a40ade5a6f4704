import pytest
import torch

from trainables import latent_conditioner as lc
from trainables.config import ConfigError, merge
from trainables.families import make_config


def config(overrides=None, preset=""):
    return make_config(lc, merge(lc.SMOKE, overrides or {}), preset)


def test_term_weights_are_head_weight_times_error_kind():
    weights = lc.term_weights(lc.Config())
    # main 10 x (mse 1, mae 0.1, huber 0.05); hier 1 x the same; enhancements their own
    assert weights == pytest.approx({
        "mse_main": 10.0, "mae_main": 1.0, "huber_main": 0.5, "mse_hier": 1.0, "mae_hier": 0.1,
        "huber_hier": 0.05, "perceptual_main": 0.1, "perceptual_hier": 0.05, "consistency": 0.1, "spectral": 1e-4})


def test_default_is_the_seeds_current_loss():
    cfg = config()
    parts = lc.build(cfg)
    terms, _ = lc.loss_terms(parts.model, parts.train_set[:8], cfg)
    assert set(terms) == {"mse_main", "mse_hier"}
    weighted = {k: lc.term_weights(cfg)[k] * v for k, v in terms.items()}
    total, health = lc.combine(parts.model, weighted, cfg)
    assert float(total.detach()) == pytest.approx(float(10 * terms["mse_main"].detach() + terms["mse_hier"].detach()))
    assert health == {}


@pytest.mark.parametrize("main_mse, hier_mse, expected", [
    # weighted: 10 x 0.4 = 4 and 1 x 1; scale max(1, 0.5 x 0.4 / 1) = 1 -> 4 + 1 = 5
    (0.4, 1.0, 5.0),
    # 10 x 4 = 40 and 1 x 1; scale max(1, 0.5 x 4 / 1) = 2 -> 40 + 2 x 1 = 42
    (4.0, 1.0, 42.0),
])
def test_adaptive_hierarchical_weight(main_mse, hier_mse, expected):
    cfg = config({"loss": {"enhancements": {"robust": True}}})
    model = lc.build(cfg).model
    total, health = lc.combine(model, {"mse_main": torch.tensor(10 * main_mse), "mse_hier": torch.tensor(hier_mse)}, cfg)
    assert float(total) == pytest.approx(expected)
    assert "hier_scale" in health


def test_every_enhancement_and_the_uncertainty_weights_are_reported():
    cfg = config(preset="large_dataset")
    parts = lc.build(cfg)
    terms, _ = lc.loss_terms(parts.model, parts.train_set[:8], cfg)
    assert set(terms) == set(lc.term_weights(cfg))
    weighted = {k: lc.term_weights(cfg)[k] * v for k, v in terms.items()}
    total, health = lc.combine(parts.model, weighted, cfg)
    assert {f"weight_{c}" for c in lc.COMPONENTS} | {"min_adaptive_weight", "hier_scale"} <= set(health)
    total.backward()
    assert parts.model.weighter.log_vars.grad is not None
    assert lc.aux_optimizer(parts.model, cfg).param_groups[0]["lr"] == 1e-3


@pytest.mark.parametrize("outline_p, positive", [(1.0, True), (0.0, False)])
def test_consistency_only_where_the_batch_was_augmented(outline_p, positive):
    cfg = config({"loss": {"enhancements": {"consistency": True}},
                  "augment": {"outline_p": outline_p, "mixup_p": 0.0, "noise_p": 0.0, "max_degrees": 10.0}})
    parts = lc.build(cfg)
    terms, _ = lc.loss_terms(parts.model, parts.train_set[:8], cfg)
    assert (float(terms["consistency"].detach()) > 0) is positive


def test_overfitting_stop_at_the_seeds_ratio():
    cfg = lc.Config()
    assert lc.stop_reason({"val/latent_mse": 2.0, "train/mse_main": 1e-3, "train/mse_hier": 0.0}, cfg) == "overfitting"
    assert lc.stop_reason({"val/latent_mse": 0.5, "train/mse_main": 1e-3, "train/mse_hier": 0.0}, cfg) == ""


def test_presets_are_the_seeds_guidelines():
    small = config(preset="small_dataset")
    assert small.loss.weights.perceptual_main == 0.2 and small.loss.weights.spectral == 1e-3
    assert small.loss.adaptive == "none" and small.loss.enhancements.robust
    high = make_config(lc, {}, "high_resolution")
    assert high.data.image_size == 512 and not high.loss.enhancements.consistency


def test_bad_values_name_their_field():
    with pytest.raises(ConfigError, match="loss.weights.main must be > 0"):
        config({"loss": {"weights": {"main": 0.0}}})
    with pytest.raises(ConfigError, match="augment.flip_p must be in"):
        config({"augment": {"flip_p": 1.5}})
