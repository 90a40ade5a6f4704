import pytest
import torch

from losstune.trainables.families import latent_conditioner as lc
from losstune.trainables.config import ConfigError, merge
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family


def config(overrides=None, preset=""):
    return make_config(load_family("latent_conditioner"), merge(lc.SMOKE, overrides or {}), preset)


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
    assert {f"weight_{c}" for c in lc.COMPONENTS} | {"min_adaptive_weight", "hier_scale",
                                                     "max_component_share"} <= set(health)
    assert 0.25 <= float(health["max_component_share"]) <= 1.0
    total.backward()
    assert parts.model.weighter.raw.grad is not None
    model_group, weights_group = lc.optimizer_groups(parts.model, cfg)
    assert weights_group.optimizer.param_groups[0]["lr"] == 1e-3  # seed enhancement 5's own Adam
    assert not weights_group.scheduled and not weights_group.clipped
    assert {id(p) for p in weights_group.optimizer.param_groups[0]["params"]} == {id(parts.model.weighter.raw)}
    assert id(parts.model.weighter.raw) not in {id(p) for p in model_group.optimizer.param_groups[0]["params"]}


def consistency_with(augment):
    cfg = config({"loss": {"enhancements": {"consistency": True}},
                  "augment": {"mixup_p": 0.0, "noise_p": 0.0, "max_degrees": 10.0, **augment}})
    torch.manual_seed(0)
    parts = lc.build(cfg)
    with torch.no_grad():  # spectral norm's power iteration converges: its weights stop moving
        for _ in range(30):
            parts.model(parts.train_set[:8][0])
    terms, health = lc.loss_terms(parts.model, parts.train_set[:8], cfg)
    assert float(health["outline_augmented"]) == augment["outline_p"]
    return float(terms["consistency"].detach())


def test_consistency_is_computed_on_every_batch():
    # Nothing changed the input: the term is the network's own noise (spectral norm's power
    # iteration moves the weights a little between the two passes in training mode, as in the seed).
    untouched = consistency_with({"outline_p": 0.0})
    assert 0 <= untouched < 1e-6
    # The outline block did not fire, the noise injection did: the seed still compares the
    # prediction on the noisy input with the one on the original (this was set to 0).
    assert consistency_with({"outline_p": 0.0, "noise_p": 1.0, "noise_std": 0.5}) > 10 * untouched
    assert consistency_with({"outline_p": 1.0}) > 10 * untouched


HEALTHY = {"epoch": 3, "val/latent_mse": 0.5, "train/mse_main": 0.4, "train/mse_hier": 0.1,
           "health/grad_norm_out_of_range": 0.0}


@pytest.mark.parametrize("changes, reason", [
    ({}, ""),
    ({"val/latent_mse": 2.0, "train/mse_main": 1e-3, "train/mse_hier": 0.0}, "overfitting"),  # 2000 > 1000
    ({"val/latent_mse": 0.5, "train/mse_main": 1e-3, "train/mse_hier": 0.0}, ""),  # 500
    ({"health/max_component_share": 0.95}, "loss_imbalance"),  # the seed's "one component > 90%"
    ({"health/max_component_share": 0.95, "epoch": 2}, ""),  # within the 2 grace epochs
    ({"health/min_adaptive_weight": 0.005}, "weight_collapse"),
    ({"health/grad_norm_out_of_range": 0.75}, "grad_norm_out_of_range"),  # most steps outside [1e-5, 50]
    ({"health/grad_norm_out_of_range": 0.25}, ""),
])
def test_stop_reasons(changes, reason):
    assert lc.stop_reason({**HEALTHY, **changes}, lc.Config()) == reason


def test_presets_are_the_seeds_guidelines():
    small = config(preset="small_dataset")
    assert small.loss.weights.perceptual_main == 0.2 and small.loss.weights.spectral == 1e-3
    assert small.loss.adaptive == "none" and small.loss.enhancements.robust
    high = make_config(load_family("latent_conditioner"), {}, "high_resolution")
    assert high.data.image_size == 512 and not high.loss.enhancements.consistency


def test_bad_values_name_their_field():
    with pytest.raises(ConfigError, match="loss.weights.main must be > 0"):
        config({"loss": {"weights": {"main": 0.0}}})
    with pytest.raises(ConfigError, match="augment.flip_p must be in"):
        config({"augment": {"flip_p": 1.5}})


def test_the_enhancements_space_never_samples_the_collapsing_softmax_weighter():
    from losstune.search_spaces import sample_points
    from losstune.trainables.registry import load_family

    for space in ("enhancements", "all"):
        chosen = {point["loss/adaptive"] for point in sample_points(load_family("latent_conditioner").spaces[space], 100)}
        assert chosen == {"none", "uncertainty"}, space
    assert config({"loss": {"adaptive": "softmax"}}).loss.adaptive == "softmax"  # an explicit opt-in still runs


class FixedLatents(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(len(x), 32), torch.zeros(len(x), 32)


def test_validation_reports_the_seeds_weighted_loss_beside_the_objective():
    # targets 0.5 (main) and 1 (hier), predictions 0: MSE main 0.25, hier 1. Objective latent_mse
    # 0.25 + 1 = 1.25; the seed's validation loss 10 x 0.25 + 1 = 3.5
    batch = (torch.zeros(1, 1, 32, 32), torch.full((1, 32), 0.5), torch.ones(1, 32))
    values = lc.val_metrics(FixedLatents(), batch, lc.Config(), {})
    assert float(values["latent_mse"]) == pytest.approx(1.25) and float(values["weighted_loss"]) == pytest.approx(3.5)


def test_metrics_carry_the_seeds_tensorboard_names():
    assert lc.TAGS["train/loss"] == "Enhanced_Loss/total" and lc.TAGS["train/spectral"] == "Enhanced_Loss/spectral"
    assert {lc.TAGS[f"health/weight_{c}"] for c in lc.COMPONENTS} == {f"Adaptive_Weights/{c}" for c in lc.COMPONENTS}
    assert lc.OBJECTIVE.metric not in lc.TAGS  # the objective keeps the platform's name
