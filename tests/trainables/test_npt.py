import pytest
import torch
from torch.utils.data import DataLoader

from data import DataError
from trainables import npt
from trainables.config import ConfigError, merge
from trainables.families import make_config


def config(overrides=None, preset=""):
    return make_config(npt, merge(npt.SMOKE, overrides or {}), preset)


def step_once(parts, cfg):
    batch = next(iter(DataLoader(parts.train_set, batch_size=8)))
    terms, health = npt.loss_terms(parts.model, batch, cfg)
    weights = npt.term_weights(cfg)
    return terms, npt.combine(parts.model, {k: weights[k] * v for k, v in terms.items()}, cfg)


def test_default_terms_and_weights_are_the_seeds():
    cfg = npt.Config()
    assert {k: v for k, v in npt.term_weights(cfg).items() if k in npt.TERMS} == {
        "direct_mlp": 10.0, "attention_encoding": 5.0, "fidelity": 1.0, "regularization": 0.01,
        "modulation_guidance": 2.0, "info_bottleneck": 0.5}
    assert (cfg.stages.stage1_steps, cfg.stages.curriculum_step1, cfg.stages.curriculum_step2) == (1000, 500, 1000)


def test_stage_two_scales_the_auxiliary_terms():
    cfg = config({"stages": {"stage1_steps": 1, "curriculum": False}})
    parts = npt.build(cfg)
    parts.model.train()
    for stage in (1, 2):  # step 0 is stage 1, step 1 stage 2
        terms, (total, _) = step_once(parts, cfg)
        w = npt.term_weights(cfg)
        factor = {n: (0.1 if stage == 2 and n in npt.AUXILIARY else 1.0) for n in terms}
        expected = sum(factor[n] * w[n] * v for n, v in terms.items())
        assert float(total.detach()) == pytest.approx(float(expected.detach()), rel=1e-5), stage


def test_adaptive_weighting_moves_towards_the_term_with_small_gradients():
    cfg = config({"stages": {"adaptive": True, "curriculum": False}})
    parts = npt.build(cfg)
    parts.model.train()
    weights = []
    for _ in range(3):
        _, (_, health) = step_once(parts, cfg)
        weights.append({k: float(v) for k, v in health.items()})
    last = torch.tensor(list(weights[-1].values()))
    norms = parts.model.ema_grad_norms
    assert float(last.sum()) == pytest.approx(1.0) and float(norms.min()) > 0
    assert float(last.max() / last.min()) > 2  # far from uniform: the terms' gradients differ
    # inverse gradient weighting: weight x (EMA gradient norm + the seed's eps 1e-6) is the same
    # for every term, so the term whose gradients dominate gets the smallest weight
    products = last * (norms + 1e-6)
    torch.testing.assert_close(products, products.mean().expand_as(products), rtol=1e-4, atol=0)
    assert int(last.argmin()) == int(norms.argmax())
    assert weights[0] != weights[-1]  # and the weights move from step to step


def test_stop_reasons():
    cfg = npt.Config()
    assert npt.stop_reason({"epoch": 1, "health/scalar_var": 0.0}, cfg) == ""  # grace
    assert npt.stop_reason({"epoch": 2, "health/scalar_var": 0.0}, cfg) == "scalar_collapse"
    assert npt.stop_reason({"epoch": 2, "health/scalar_var": 1.0, "health/vb_norm": 1e4}, cfg) == "modulation_exploded"
    assert npt.stop_reason({"epoch": 2, "health/scalar_var": 1.0, "health/va_norm": 1.0, "health/vb_norm": 1.0},
                           cfg) == ""


def test_text_files_and_their_errors(tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("hello world, " * 20)
    cfg = config({"data": {"path": str(text), "seq_len": 16}})
    train, val = npt.load_arrays(cfg)
    assert train.shape[1] == 16 and len(train) + len(val) == (13 * 20) // 16 and npt.vocab_size(cfg) == 256
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00")
    for name, message in (("empty.txt", "empty file"), ("binary.txt", "not UTF-8"), ("nope.txt", "no such file")):
        with pytest.raises(DataError, match=f"{name}: {message}"):
            npt.check_data(config({"data": {"path": str(tmp_path / name)}}))
    with pytest.raises(DataError, match=r"a.txt: 260 bytes are fewer than data.seq_len=512"):
        npt.check_data(config({"data": {"path": str(text), "seq_len": 512}}))


def test_a_hugging_face_checkpoint_is_not_implemented_and_says_why():
    with pytest.raises(NotImplementedError, match="model.checkpoint_dir: .*transformers"):
        npt.check_data(config({"model": {"checkpoint_dir": "/models/llama"}}))


@pytest.mark.parametrize("overrides, message", [
    ({"model": {"d_model": 30, "heads": 4}}, "model.d_model must split into 4 heads of even size"),
    ({"stages": {"curriculum_step1": 900, "curriculum_step2": 800}}, "stages.curriculum_step2 must be >= 900"),
    ({"loss": {"weights": {"fidelity": -1}}}, "loss.weights.fidelity must be >= 0.0"),
])
def test_bad_values_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config(overrides)
