"""A local Hugging Face checkpoint as npt's teacher: the layer reproduces the model's own, the
hidden states are what that layer receives, and every bad folder is one line naming what is wrong."""

import json
import shutil
import sys

import numpy as np
import pytest
import torch

from losstune.data import DataError
from losstune.data.npt_checkpoint import hidden_states, load_teacher, read_checkpoint, token_sequences
from losstune.models.npt import TeacherLayer, plain_frequencies
from tests.hf_checkpoints import corpus, tiny_checkpoint


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("hf") / "llama")


def layer_outputs(folder, tokens) -> dict:
    """{layer index: that layer's output} from the full model, as transformers computes it."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32).eval()
    outputs = {}
    for i, layer in enumerate(model.layers):
        layer.register_forward_hook(lambda module, args, out, i=i: outputs.__setitem__(i, out))
    with torch.no_grad():
        model(torch.from_numpy(tokens), use_cache=False)
    return outputs


def test_the_checkpoints_shape_and_tokenizer_are_read(llama):
    checkpoint = read_checkpoint(str(llama), 2, 16)
    s = checkpoint.shape
    assert (s.d_model, s.heads, s.kv, s.head_size, s.d_ffn, s.rope_theta) == (32, 4, 2, 8, 64, 10000.0)
    assert checkpoint.num_layers == 3 and checkpoint.model_type == "llama"
    assert checkpoint.tokenizer.bos_token_id == 1


# Llama 3's rope (scaled frequencies) and yarn's (with a factor on cos and sin), at a tiny scale
LLAMA3_ROPE = {"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 16}}
YARN_ROPE = {"rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                 "original_max_position_embeddings": 16}}


@pytest.mark.parametrize("model_type, config", [("llama", {}), ("mistral", {}), ("qwen2", {}),
                                                ("llama", LLAMA3_ROPE), ("llama", YARN_ROPE)])
def test_the_teacher_layer_reproduces_the_models_own_layer(tmp_path, model_type, config):
    folder = tiny_checkpoint(tmp_path / model_type, model_type, **config)
    checkpoint = read_checkpoint(str(folder), 0, 16)
    tokens = token_sequences(corpus(), checkpoint.tokenizer, 16, "corpus")[:6]
    expected = layer_outputs(folder, tokens)
    for index in range(checkpoint.num_layers):
        model, state = load_teacher(checkpoint, index)
        teacher = TeacherLayer(checkpoint.shape)
        teacher.load_state_dict(state)  # strict: the layer's every tensor maps onto the teacher's
        h = hidden_states(model, index, tokens)
        with torch.no_grad():
            torch.testing.assert_close(teacher(h), expected[index], rtol=0, atol=1e-5)
        if model_type == "qwen2":  # its q, k, v biases are loaded (the checkpoint's are not zero)
            assert teacher.attn.q.bias.abs().sum() > 0 and teacher.attn.o.bias is None
    if config:  # a scaled rope: other frequencies than plain rope's (or the test would not see them)
        assert checkpoint.shape.inv_freq and checkpoint.shape.inv_freq != tuple(
            plain_frequencies(8, config["rope_parameters"]["rope_theta"]).tolist())


def test_hidden_states_are_the_embeddings_then_each_layers_output(llama):
    checkpoint = read_checkpoint(str(llama), 0, 16)
    tokens = token_sequences(corpus(), checkpoint.tokenizer, 16, "corpus")[:5]
    model, _ = load_teacher(checkpoint, 2)
    expected = layer_outputs(llama, tokens)
    torch.testing.assert_close(hidden_states(model, 0, tokens, batch_size=2),
                               model.embed_tokens(torch.from_numpy(tokens)).detach())
    torch.testing.assert_close(hidden_states(model, 2, tokens, batch_size=2), expected[1])
    assert len(model.layers) == 3  # layers after layer_index are never loaded: here there are none


def test_only_the_layers_up_to_the_teacher_are_loaded(llama):
    model, state = load_teacher(read_checkpoint(str(llama), 0, 16), 0)
    assert len(model.layers) == 1 and set(state) >= {"attn.q.weight", "mlp.gate.weight", "attn_norm.weight"}


def test_text_becomes_sequences_that_start_with_bos(llama):
    tokenizer = read_checkpoint(str(llama), 0, 16).tokenizer
    text = "Beautiful is better than ugly.\nExplicit is better than implicit.\n" * 10
    sequences = token_sequences(text, tokenizer, 8, "t.txt")
    stream = tokenizer(text.splitlines(keepends=True), add_special_tokens=False)["input_ids"]
    flat = [t for line in stream for t in line]
    assert sequences.dtype == np.int64 and sequences.shape == (len(flat) // 7, 8)
    assert (sequences[:, 0] == 1).all() and sequences[0, 1:].tolist() == flat[:7]  # BOS + 7 text tokens
    assert sequences[1, 1:].tolist() == flat[7:14]
    with pytest.raises(DataError, match=r"t.txt: \d+ tokens are fewer than data.seq_len=4096"):
        token_sequences(text, tokenizer, 4096, "t.txt")


def copy_without(folder, tmp_path, *names):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    for name in names:
        (copy / name).unlink()
    return copy


def edit_config(folder, **fields):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **fields}))
    return folder


@pytest.mark.parametrize("make, layer, seq_len, message", [
    (lambda llama, tmp: tmp / "nowhere", 0, 16, "nowhere: no such directory"),
    (lambda llama, tmp: copy_without(llama, tmp, "config.json"), 0, 16, "no config.json: not a Hugging Face"),
    (lambda llama, tmp: edit_config(copy_without(llama, tmp), model_type="gpt2"), 0, 16,
     r"architecture 'gpt2' is not supported \(supported: llama, mistral, qwen2"),
    (lambda llama, tmp: llama, 3, 16, r"model.layer_index 3 is out of range: .* has 3 layers \(0 to 2\)"),
    (lambda llama, tmp: llama, 0, 65, "data.seq_len 65 is longer than .*max_position_embeddings 64"),
    (lambda llama, tmp: copy_without(llama, tmp, "tokenizer.json"), 0, 16,
     "no tokenizer: none of tokenizer.json, tokenizer.model, vocab.json"),
    (lambda llama, tmp: copy_without(llama, tmp, "model.safetensors"), 0, 16,
     "no weights .expected model.safetensors or model.safetensors.index.json"),
    (lambda llama, tmp: edit_config(copy_without(llama, tmp), hidden_act="gelu"), 0, 16, "hidden_act 'gelu'"),
    (lambda llama, tmp: edit_config(copy_without(llama, tmp), rope_parameters={
        "rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}), 0, 16,
     r"rope_type 'dynamic' is not supported \(its frequencies change with the sequence length\)"),
])
def test_a_bad_folder_is_one_line_naming_what_is_wrong(llama, tmp_path, make, layer, seq_len, message):
    with pytest.raises(DataError, match=message) as err:
        read_checkpoint(str(make(llama, tmp_path)), layer, seq_len)
    assert len(str(err.value).splitlines()) == 1


def test_sharded_weights_are_read_and_a_missing_shard_named(llama, tmp_path):
    from transformers import AutoModelForCausalLM

    folder = copy_without(llama, tmp_path, "model.safetensors")
    AutoModelForCausalLM.from_pretrained(llama, local_files_only=True).save_pretrained(folder, max_shard_size="20KB")
    shards = sorted(folder.glob("model-*.safetensors"))
    assert len(shards) > 2 and (folder / "model.safetensors.index.json").is_file()
    assert read_checkpoint(str(folder), 2, 16).num_layers == 3
    shards[-1].unlink()
    with pytest.raises(DataError, match=rf"weight shard {shards[-1].name} is missing \(1 of {len(shards)} shards"):
        read_checkpoint(str(folder), 0, 16)


def test_pytorch_bin_weights_are_refused_by_name(llama, tmp_path):
    folder = copy_without(llama, tmp_path, "model.safetensors")
    torch.save({}, folder / "pytorch_model.bin")
    with pytest.raises(DataError, match="only PyTorch .bin weights; save them with safetensors"):
        read_checkpoint(str(folder), 0, 16)


def test_a_sliding_window_shorter_than_the_sequences_is_refused(tmp_path):
    folder = tiny_checkpoint(tmp_path / "mistral", "mistral", sliding_window=8)
    with pytest.raises(DataError, match="layer 0 attends over a sliding window of 8 tokens, shorter than data.seq_len 16"):
        read_checkpoint(str(folder), 0, 16)
    assert read_checkpoint(str(folder), 0, 8).shape.d_model == 32  # a window as long as the sequences is full attention


def test_without_transformers_the_error_says_which_extra_to_install(llama, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(DataError, match=r"model.checkpoint_dir: .* needs transformers: pip install 'losstune\[hf\]'"):
        read_checkpoint(str(llama), 0, 16)
