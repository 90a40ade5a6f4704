import optuna
import pytest

from losstune.search_spaces import default_point, optuna_space, sample_points
from losstune.trainables.config import get_path, merge, unflatten
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import FAMILIES, load_family

CASES = [(family, name) for family in FAMILIES for name in load_family(family).spaces]


def base_for(family, name, tmp_path) -> dict:
    """What a sweep over the space needs on top of the defaults (as its --set flags would give), and
    the preset the family names for it (SPACE_PRESETS)."""
    resolved = load_family(family)
    preset = resolved.presets.get(resolved.space_presets.get(name, ""), {})
    if (family, name) == ("medgen_diffusion", "weights_perceptual"):
        weights = tmp_path / "resnet50.pt"
        weights.write_bytes(b"")
        return {"loss": {"perceptual_weights_path": str(weights)}}
    return dict(preset)


@pytest.mark.parametrize("family, name", CASES)
def test_every_key_of_every_space_exists_in_the_config(family, name, tmp_path):
    base = base_for(family, name, tmp_path)
    config = make_config(load_family(family), base)
    space = load_family(family).space(name, config)
    for point in [default_point(space, config)] + sample_points(space, 30):
        for key in point:
            get_path(config, key)  # KeyError names a key the config lacks
        make_config(load_family(family), merge(base, unflatten(point)))  # and every sampled value is valid


@pytest.mark.parametrize("family, name", CASES)
def test_documented_default_is_a_point_of_the_space(family, name):
    config = load_family(family).space_config(name)
    space = load_family(family).space(name, config)
    point = default_point(space, config)
    assert point and all(get_path(config, k) == v for k, v in point.items())
    # Optuna accepts it as the first trial: every value lies inside its distribution
    study = optuna.create_study()
    study.enqueue_trial(point)
    trial = study.ask() if callable(space) else study.ask(fixed_distributions=optuna_space(space))
    if callable(space):
        space(trial)
    for key, value in point.items():
        assert trial.distributions[key]._contains(trial.distributions[key].to_internal_repr(value)), key
    assert trial.params == point


def test_spaces_by_concern():
    assert {"caps", "weights", "schedule", "all"} <= set(load_family("hdr_patch").spaces)


def test_caps_space_is_conditional_on_mode():
    points = sample_points(load_family("hdr_patch").spaces["caps"], 40)
    for point in points:
        if point["caps/mode"] == "B":
            assert "caps/log_delta_scale" in point and "caps/abs_max" not in point
        else:
            assert "caps/log_delta_scale" not in point
    assert {p["caps/mode"] for p in points} == {"A", "B"}


def test_caps_factors_are_sampled_log_uniformly():
    # Every float of `caps` scales a cap; drawn log-uniformly, 0.3-0.6 of log_delta_scale's 0.3-1.5
    # holds log(2) / log(5) = 43% of the draws (uniformly it would be 0.3 / 1.2 = 25%).
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    draws, float_count = [], 0
    for _ in range(2000):
        trial = study.ask()
        load_family("hdr_patch").spaces["caps"](trial)
        floats = [d for d in trial.distributions.values() if isinstance(d, optuna.distributions.FloatDistribution)]
        assert all(d.log for d in floats), trial.distributions  # the adaptive scaler's branch has none
        float_count += len(floats)
        draws += [trial.params["caps/log_delta_scale"]] if "caps/log_delta_scale" in trial.params else []
        study.tell(trial, 0.0)
    share = sum(0.3 <= v <= 0.6 for v in draws) / len(draws)
    assert float_count > 2000  # most branches sample some
    assert 0.37 < share < 0.49, share  # ~1000 draws: 43% +- 1.6% (uniform: 25%)


def test_medgen_spaces_offer_self_conditioning_only_with_feature_perturbation():
    # without feature noise the two passes are identical: the term is 0 and its pass wasted
    for name in ("weights", "regularisation", "all"):
        points = sample_points(load_family("medgen_diffusion").spaces[name], 300)
        on = [p for p in points if p.get("regularisation/self_conditioning")]
        assert on and all(p["regularisation/feature_perturbation"] for p in on), name
        assert any(p["regularisation/feature_perturbation"] and not p.get("regularisation/self_conditioning")
                   for p in points), name


def test_lgt_caps_space_tunes_the_seeds_batch_size_change():
    points = sample_points(load_family("lgt").spaces["caps"], 100)
    assert {p["train/batch_size"] for p in points} == {16, 32, 48, 96, 240}  # seed: 240 -> 48
    assert default_point(load_family("lgt").spaces["caps"], load_family("lgt").config_class())["train/batch_size"] == 48
