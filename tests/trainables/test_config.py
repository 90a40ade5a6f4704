import pytest

from losstune.trainables.families import hdr_patch
from losstune.trainables.config import ConfigError, apply_overrides, get_path, merge, to_dict, unflatten
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family


@pytest.mark.parametrize("overrides, message", [
    ({"caps": {"abs_max": 0.0}}, "caps.abs_max must be > 0.0, got 0.0"),
    ({"caps": {"abs_max": -3}}, "caps.abs_max must be > 0.0, got -3.0"),
    ({"loss": {"weights": {"range": -1}}}, "loss.weights.range must be >= 0.0, got -1.0"),
    ({"loss": {"wieghts": {}}}, "loss.wieghts is not a config key"),
    ({"nonsense": 1}, "nonsense is not a config key"),
    ({"caps": {"mode": "C"}}, "caps.mode must be one of ['A', 'B'], got 'C'"),
    ({"caps": {"clamp_enabled": "yes"}}, "caps.clamp_enabled must be true or false, got 'yes'"),
    ({"train": {"epochs": 2.5}}, "train.epochs must be an integer, got 2.5"),
    ({"train": {"mixed_precision": "fp8"}}, "train.mixed_precision must be one of"),
    ({"optim": {"lr": float("nan")}}, "optim.lr must be a finite number, got nan"),
    # JSON's Infinity and 1e999 parse to inf: every number field refuses it, not only range checks
    ({"optim": {"lr": float("inf")}}, "optim.lr must be a finite number, got inf"),
    ({"caps": {"abs_max": float("inf")}}, "caps.abs_max must be a finite number, got inf"),
    ({"loss": {"weights": {"log_supervision": float("inf")}}}, "loss.weights.log_supervision must be a finite"),
    ({"train": {"epochs": float("inf")}}, "train.epochs must be an integer, got inf"),
    ({"caps": {"mode": "B"}, "model": {"learnable_scale": True}}, "model.learnable_scale replaces Mode A's fixed cap"),
    ({"data": {"patch_size": 30}}, "data.patch_size must be a multiple of 4"),
])
def test_bad_values_name_their_dotted_field(overrides, message):
    with pytest.raises(ConfigError) as err:
        make_config(load_family("hdr_patch"), overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_config_error_crosses_ray_intact():
    import pickle

    err = pickle.loads(pickle.dumps(ConfigError("train.batch_size", "is larger than the training set")))
    assert (err.path, err.message, str(err)) == ("train.batch_size", "is larger than the training set",
                                                 "train.batch_size is larger than the training set")


def test_defaults_are_the_seeds_current_setting():
    cfg = hdr_patch.Config()
    assert (cfg.caps.mode, cfg.caps.abs_max, cfg.caps.alpha) == ("A", 16.0, 1.2)
    assert (cfg.caps.log_delta_scale, cfg.caps.eps, cfg.caps.clamp_enabled) == (0.9, 1e-6, False)
    assert (cfg.loss.log_supervision_type, cfg.loss.weights.log_supervision) == ("l1", 1.0)
    assert cfg.model.in_channels == 7 and cfg.model.scale_init == 6.0


def test_phase1_preset_is_the_seeds_immediate_fix():
    cfg = make_config(load_family("hdr_patch"), preset="phase1")
    assert (cfg.caps.abs_max, cfg.caps.alpha, cfg.caps.clamp_enabled, cfg.caps.clamp_value) == (6.0, 1.0, True, 8.0)
    assert (cfg.loss.log_supervision_type, cfg.loss.weights.log_supervision, cfg.loss.huber_delta) == ("huber", 2.0, 0.2)


def test_unknown_preset_is_an_error():
    with pytest.raises(ConfigError, match="preset is unknown: 'phase9'"):
        make_config(load_family("hdr_patch"), preset="phase9")


def test_overrides_keep_family_defaults_of_untouched_fields_and_round_trip():
    cfg = make_config(load_family("hdr_patch"), {"optim": {"weight_decay": 0.0}, "model": {"channels": [8, 16]}})
    assert cfg.optim.lr == hdr_patch.Config().optim.lr and cfg.optim.weight_decay == 0.0
    assert cfg.model.channels == (8, 16)
    assert apply_overrides(hdr_patch.Config(), to_dict(cfg)) == cfg


def test_dict_helpers():
    assert unflatten({"a/b": 1, "a/c": 2, "d": 3}) == {"a": {"b": 1, "c": 2}, "d": 3}
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 5}}) == {"a": {"b": 1, "c": 5}}
    assert get_path(hdr_patch.Config(), "caps/abs_max") == 16.0
    with pytest.raises(KeyError):
        get_path(hdr_patch.Config(), "caps.nope")
