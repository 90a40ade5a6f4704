import dataclasses
import pytest
import torch
from torch.utils.data import DataLoader

from losstune.data import DataError
from losstune.trainables.families import npt
from losstune.trainables.families import npt_parts
from losstune.trainables.config import ConfigError, merge
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family


def config(overrides=None, preset=""):
    return make_config(load_family("npt"), merge(npt.SMOKE, overrides or {}), preset)


def step_once(parts, cfg, step):
    """One step's loss as the loop computes it, `step` optimiser steps done before it."""
    npt.on_step_start(parts.model, step, cfg)
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
        terms, (total, _) = step_once(parts, cfg, step=stage - 1)
        w = npt.term_weights(cfg)
        factor = {n: (0.1 if stage == 2 and n in npt.AUXILIARY else 1.0) for n in terms}
        expected = sum(factor[n] * w[n] * v for n, v in terms.items())
        assert float(total.detach()) == pytest.approx(float(expected.detach()), rel=1e-5), stage


def test_adaptive_weighting_moves_towards_the_term_with_small_gradients():
    cfg = config({"stages": {"adaptive": True, "curriculum": False}})
    parts = npt.build(cfg)
    parts.model.train()
    weights = []
    for step in range(3):
        _, (_, health) = step_once(parts, cfg, step)
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
    # the seed's "not exploding or vanishing": a norm under 1e-4 stops too
    assert npt.stop_reason({"epoch": 2, "health/scalar_var": 1.0, "health/va_norm": 5e-5, "health/vb_norm": 1.0},
                           cfg) == "modulation_vanished"
    assert npt.stop_reason({"epoch": 1, "health/scalar_var": 1.0, "health/va_norm": 5e-5}, cfg) == ""  # grace
    # 10x further from the teacher than the layer without its modulation: diverged
    assert npt.stop_reason({"epoch": 2, "health/scalar_var": 1.0, "health/fidelity_vs_plain": 11.0},
                           cfg) == "modulation_diverged"
    assert npt.stop_reason({"epoch": 2, "health/scalar_var": 1.0, "health/fidelity_vs_plain": 0.9}, cfg) == ""


def test_fidelity_against_the_unmodulated_layer_by_hand():
    # one sequence of two equal positions, d_model 2: h = (1, 0), MLP(h) = (0, 1), teacher output
    # (1, 2). Unmodulated h + MLP(h) = (1, 1): MSE (0 + 1) / 2 = 0.5. NPT output (1, 3): MSE 0.5 as
    # well, so the ratio is 1; the summary keeps the means and adds their ratio.
    def two(vector):
        return torch.tensor([[vector, vector]])

    out = {"hidden": two([1.0, 0.0]), "mlp_plain": two([0.0, 1.0]), "mlp_modulated": two([0.0, 3.0]),
           "npt_output": two([1.0, 3.0]), "teacher_output": two([1.0, 2.0]), "attention": two([1.0, 0.0]),
           "v_a": two([1.0, 0.0]), "mlp_input": two([1.0, 0.0])}
    values = npt.val_metrics(lambda tokens: out, (torch.zeros(1, 1),), npt.Config(), {})
    assert float(values["fidelity_mse"]) == 0.5 and float(values["plain_fidelity_mse"]) == 0.5
    summary = npt.summarise_val({"fidelity_mse": 0.5, "plain_fidelity_mse": 0.25}, npt.Config())
    assert summary["fidelity_vs_plain"] == 2.0 and summary["fidelity_mse"] == 0.5


def test_the_default_is_the_seeds_combined_loss_without_its_later_phases():
    cfg = npt.Config()
    assert npt.enabled_terms(cfg) == list(npt.TERMS)  # the six terms of "Updated Loss Architecture"
    assert not cfg.stages.curriculum and not cfg.stages.adaptive  # curriculum is its Phase 3


@pytest.mark.parametrize("phase, terms, curriculum", [
    # seed "Implementation Priority": 1 modulation guidance + adaptive weighting; 2 + information
    # bottleneck + decomposed target; 3 + projection consistency + curriculum; 4 + orthogonality
    ("phase1", ["direct_mlp", "attention_encoding", "fidelity", "regularization", "modulation_guidance"], False),
    ("phase2", list(npt.TERMS) + ["decomposed"], False),
    ("phase3", list(npt.TERMS) + ["decomposed", "projection_consistency"], True),
    ("phase4", list(npt.TERMS) + list(npt.OPTIONAL_TERMS), True),
])
def test_phase_presets_follow_the_seeds_priority(phase, terms, curriculum):
    cfg = config(preset=phase)
    assert npt.enabled_terms(cfg) == terms and cfg.stages.adaptive and cfg.stages.curriculum is curriculum
    parts = npt.build(cfg)
    computed, _ = step_once(parts, cfg, step=0)
    assert list(computed) == terms  # what loss_terms computes is what the preset names


def test_text_files_and_their_errors(tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("hello world, " * 20)
    cfg = config({"data": {"path": str(text), "seq_len": 16}})
    train, val = npt_parts.load_arrays(cfg)
    assert train.shape[1] == 16 and len(train) + len(val) == (13 * 20) // 16 and npt_parts.vocab_size(cfg) == 256
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00")
    for name, message in (("empty.txt", "empty file"), ("binary.txt", "not UTF-8"), ("nope.txt", "no such file")):
        with pytest.raises(DataError, match=f"{name}: {message}"):
            npt.check_data(config({"data": {"path": str(tmp_path / name)}}))
    with pytest.raises(DataError, match=r"a.txt: 260 bytes are fewer than data.seq_len=512"):
        npt.check_data(config({"data": {"path": str(text), "seq_len": 512}}))


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    from tests.hf_checkpoints import text_file, tiny_checkpoint

    folder = tmp_path_factory.mktemp("hf")
    return str(tiny_checkpoint(folder / "llama")), str(text_file(folder))


def checkpoint_config(llama, layer=1, preset=""):
    folder, text = llama
    return config({"model": {"checkpoint_dir": folder, "layer_index": layer}, "data": {"path": text}}, preset)


def test_a_checkpoint_layer_trains_on_the_hidden_states_of_its_tokenised_text(llama):
    from losstune.data.npt_checkpoint import token_sequences
    from tests.data.test_npt_checkpoint import layer_outputs

    cfg = checkpoint_config(llama)
    parts = npt.build(cfg)
    train, val = parts.train_set.tensors[0], parts.val_set.tensors[0]
    count = npt.check_data(cfg)  # 16 tokens a sequence, the smoke test's 80 sequences, 10% held out
    assert train.shape == (count, 16, 32) == (72, 16, 32) and train.dtype == torch.float32 and len(val) == 8
    # the states entering layer 1 are layer 0's outputs for the tokenised text
    tokens = token_sequences(open(llama[1]).read(), npt_parts.checkpoint_of(cfg).tokenizer, 16, "corpus")[:4]
    torch.testing.assert_close(train[:4], layer_outputs(llama[0], tokens)[0])
    teacher = parts.model.model.teacher
    assert teacher.attn.k.out_features == 16 and not any(p.requires_grad for p in teacher.parameters())
    parts.model.train()
    terms, (total, _) = step_once(parts, cfg, step=0)
    assert set(terms) == set(npt.TERMS) and all(torch.isfinite(v) for v in terms.values())
    total.backward()  # the NP component learns; nothing else has gradients
    assert all((p.grad is not None) == p.requires_grad for p in parts.model.parameters())


def test_every_loss_term_and_the_monitoring_run_on_a_checkpoint_layer(llama):
    cfg = checkpoint_config(llama, layer=2, preset="all_terms")
    parts = npt.build(cfg)
    parts.model.eval()
    batch = next(iter(DataLoader(parts.val_set, batch_size=4)))
    metrics = npt.val_metrics(parts.model, batch, cfg, parts.extras)
    assert set(metrics) == {"fidelity_mse", "plain_fidelity_mse", "attn_cosine", "scalar_var"}
    assert all(v.shape == (4,) and torch.isfinite(v).all() for v in metrics.values())
    terms, _ = step_once(parts, cfg, step=0)
    assert set(terms) == set(npt.TERMS + npt.OPTIONAL_TERMS) and all(torch.isfinite(v) for v in terms.values())


def test_max_sequences_takes_the_first_sequences_of_each_file(llama):
    _, text = llama
    everything, _ = npt_parts.load_arrays(config({"data": {"path": text, "max_sequences": 0, "val_path": text}}))
    train, val = npt_parts.load_arrays(config({"data": {"path": text, "max_sequences": 50}}))  # 45 + 5 held out
    assert len(everything) > 1000 and (len(train), len(val)) == (45, 5)
    assert (train == everything[:45]).all() and (val == everything[45:50]).all()


def test_a_checkpoint_needs_a_text_file(llama):
    with pytest.raises(DataError, match="data.path: a model.checkpoint_dir layer trains on real text"):
        npt.check_data(config({"model": {"checkpoint_dir": llama[0]}}))


@pytest.mark.parametrize("overrides, message", [
    ({"model": {"d_model": 30, "heads": 4}}, "model.d_model must split into 4 heads of even size"),
    ({"stages": {"curriculum_step1": 900, "curriculum_step2": 800}}, "stages.curriculum_step2 must be >= 900"),
    ({"loss": {"weights": {"fidelity": -1}}}, "loss.weights.fidelity must be >= 0.0"),
    ({"model": {"layer_index": -1}}, "model.layer_index must be >= 0"),
    ({"data": {"max_sequences": -5}}, "data.max_sequences must be >= 0"),
])
def test_bad_values_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config(overrides)


def test_sam_steps_count_once_in_the_stages_and_the_adaptive_measurements():
    # 8 optimiser steps with SAM (two loss passes each), stage 1 for the first 4: the epoch's mean
    # of the per-step stage is (4 x 1 + 4 x 2) / 8 = 1.5. Counted per loss pass, stage 2 came after
    # 2 steps: (2 x 1 + 6 x 2) / 8 = 1.75. The gradient-norm EMA is measured once per step.
    from accelerate import Accelerator

    from losstune.trainables.engine.loop import run_epoch
    from losstune.trainables.engine.step import Run
    from losstune.trainables.engine.optimizer_groups import TrainedGroup
    from losstune.trainables.engine.lr_schedules import make_lr_schedule

    for adaptive in (False, True):
        cfg = config({"optim": {"sam_rho": 0.05}, "stages": {"stage1_steps": 4, "curriculum": False,
                                                             "adaptive": adaptive}})
        parts = npt.build(cfg)
        params = [p for p in parts.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-3)
        loader = DataLoader(parts.train_set, batch_size=8)
        assert len(loader) == 8
        group = TrainedGroup("model", optimizer, params, schedule=make_lr_schedule(optimizer, cfg, total_steps=8))
        stats, step = run_epoch(Run(Accelerator(cpu=True), parts.model, [group], npt, cfg), loader, step=0)
        assert step == 8 and int(parts.model.step) == 7  # the last step saw 7 before it
        assert stats["health"]["stage"] == pytest.approx(1.5)
        if adaptive:
            assert int(parts.model.measured_step) == 7


def test_the_config_as_trained_holds_the_checkpoints_layer_sizes(llama):
    # issue 55: a smoke sweep with a checkpoint recorded d_model 32, heads 2, d_ffn 64 (the smoke
    # sizes) in best_config.json for the checkpoint's layer; the tiny Llama here is 32 / 4 / 64
    from losstune.trainables.registry import load_family

    cfg = checkpoint_config(llama)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, d_model=16, heads=2, d_ffn=8))
    trained = load_family("npt").trained_config(cfg)
    assert (trained.model.d_model, trained.model.heads, trained.model.d_ffn) == (32, 4, 64)
    plain = config({})
    assert load_family("npt").trained_config(plain) is plain  # the random teacher: as configured
