"""A local Hugging Face checkpoint as the npt family's teacher (seed 003 trains one layer of a
pretrained transformer): its config, one decoder layer's weights, its tokenizer, and the hidden
states that its earlier layers give real text.

Supported: decoder-only Llama-style models, whose layer is RMSNorm -> rotary causal attention
(grouped-query allowed) -> RMSNorm -> SwiGLU MLP: `llama`, `mistral` (its sliding window no
shorter than data.seq_len) and `qwen2` (biases on q, k, v), with plain rope or a scaled one whose
frequencies are fixed (Llama 3's `llama3`, `linear`, `yarn`). Anything else (other model types,
rope that changes with the sequence length, other activations) is refused by name, before Ray
starts: the family's own layer (models/npt.py) would compute something else. Reading needs
`transformers` (pip install 'losstune[hf]'); nothing is ever downloaded (local_files_only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from losstune.data import DataError
from losstune.models.npt import LayerShape
import copy
import torch

SUPPORTED = ("llama", "mistral", "qwen2")
STATIC_ROPE = ("linear", "llama3", "yarn")  # scaled rope whose frequencies are fixed (transformers computes them)
FIELD = "model.checkpoint_dir"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
# Hugging Face's names of a decoder layer's tensors -> the teacher's (models/npt.TeacherLayer)
LAYER_NAMES = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn.q", "self_attn.k_proj": "attn.k",
               "self_attn.v_proj": "attn.v", "self_attn.o_proj": "attn.o", "post_attention_layernorm": "mlp_norm",
               "mlp.gate_proj": "mlp.gate", "mlp.up_proj": "mlp.up", "mlp.down_proj": "mlp.down"}


@dataclass(frozen=True)
class Checkpoint:
    folder: str
    model_type: str
    shape: LayerShape  # the layer's sizes, from config.json
    num_layers: int
    config: object = field(repr=False, compare=False)  # transformers' config of the folder
    tokenizer: object = field(repr=False, compare=False)  # transformers' tokenizer of the folder


def fail(folder, why: str):
    raise DataError(f"{FIELD} {folder}: {why}")


def transformers():
    try:
        import transformers as hf
    except ImportError:
        raise DataError(f"{FIELD}: reading a Hugging Face checkpoint needs transformers: "
                        "pip install 'losstune[hf]'") from None
    hf.logging.set_verbosity_error()  # its load report lists every layer it skipped, by design here
    hf.logging.disable_progress_bar()  # one bar per load in every trial's log
    return hf


def read_checkpoint(folder: str, layer_index: int, seq_len: int) -> Checkpoint:
    """Everything a run will read from `folder`, checked without loading any weights: the config
    (a supported architecture, `layer_index` in range), the weight files and the layer's tensors
    in them, and the tokenizer. Raises a one-line DataError naming what is missing or refused."""
    config = read_config(folder)
    shape = layer_shape(folder, config, layer_index, seq_len)
    check_weights(folder, layer_index)
    return Checkpoint(folder, config.model_type, shape, config.num_hidden_layers, config, tokenizer_of(folder))


def read_config(folder: str):
    path = Path(folder)
    if not path.is_dir():
        fail(folder, "no such directory")
    if not (path / "config.json").is_file():
        fail(folder, "no config.json: not a Hugging Face checkpoint folder")
    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
    except (ValueError, OSError) as err:
        fail(folder, f"config.json is not readable JSON ({err})")
    if model_type not in SUPPORTED:
        fail(folder, f"architecture {model_type!r} is not supported (supported: {', '.join(SUPPORTED)}: "
                     "RMSNorm, rotary attention, SwiGLU)")
    hf = transformers()
    try:
        return hf.AutoConfig.from_pretrained(folder, local_files_only=True)
    except Exception as err:  # transformers' own checks of the file
        fail(folder, f"config.json: {str(err).splitlines()[0]}")


def layer_shape(folder, config, layer_index: int, seq_len: int) -> LayerShape:
    if not 0 <= layer_index < config.num_hidden_layers:
        raise DataError(f"model.layer_index {layer_index} is out of range: {folder} has "
                        f"{config.num_hidden_layers} layers (0 to {config.num_hidden_layers - 1})")
    if config.hidden_act != "silu":
        fail(folder, f"hidden_act {config.hidden_act!r} is not supported (the SwiGLU MLP is silu)")
    inv_freq, rope_scale = rotary_of(folder, config)
    if seq_len > config.max_position_embeddings:
        raise DataError(f"data.seq_len {seq_len} is longer than {folder}'s max_position_embeddings "
                        f"{config.max_position_embeddings}")
    window = sliding_window(config, layer_index)
    if window is not None and window < seq_len:
        fail(folder, f"layer {layer_index} attends over a sliding window of {window} tokens, shorter than "
                     f"data.seq_len {seq_len}, which is not supported")
    qwen = config.model_type == "qwen2"
    return LayerShape(d_model=config.hidden_size, heads=config.num_attention_heads, d_ffn=config.intermediate_size,
                      kv_heads=getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
                      head_dim=getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads,
                      rope_theta=float((config.rope_parameters or {}).get("rope_theta", 10000.0)),
                      inv_freq=inv_freq, rope_scale=rope_scale, eps=config.rms_norm_eps,
                      qkv_bias=qwen or bool(getattr(config, "attention_bias", False)),
                      o_bias=not qwen and bool(getattr(config, "attention_bias", False)),
                      mlp_bias=bool(getattr(config, "mlp_bias", False)))


def rotary_of(folder, config) -> tuple[tuple[float, ...], float]:
    """(rotary frequencies, factor on cos and sin) of a scaled rope, computed by transformers' own
    function for its type; ((), 1.0) for plain rope. Types whose frequencies change with the
    sequence length are refused."""
    kind = (config.rope_parameters or {}).get("rope_type", "default")
    if kind == "default":
        return (), 1.0
    if kind not in STATIC_ROPE:
        fail(folder, f"rope_type {kind!r} is not supported (its frequencies change with the sequence length); "
                     f"supported: default, {', '.join(STATIC_ROPE)}")
    # here, not at the top: loads transformers only where this runs
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    inv_freq, scale = ROPE_INIT_FUNCTIONS[kind](config)
    return tuple(inv_freq.float().tolist()), float(scale)


def sliding_window(config, layer_index: int) -> int | None:
    """The layer's attention window, None where it attends to every earlier token."""
    if config.model_type == "qwen2":
        sliding = (getattr(config, "layer_types", None) or [])[layer_index:layer_index + 1] == ["sliding_attention"]
        return config.sliding_window if sliding else None
    return getattr(config, "sliding_window", None)


def weight_files(folder: str) -> dict:
    """{tensor name: safetensors file} from the single file or the sharded index."""
    path = Path(folder)
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError, OSError) as err:
            fail(folder, f"model.safetensors.index.json is not a readable index ({err})")
        missing = sorted({f for f in weight_map.values() if not (path / f).is_file()})
        if missing:
            fail(folder, f"weight shard {missing[0]} is missing ({len(missing)} of "
                         f"{len(set(weight_map.values()))} shards listed in model.safetensors.index.json)")
        return {name: path / f for name, f in weight_map.items()}
    if (path / "model.safetensors").is_file():
        # here, not at the top: loads safetensors only where this runs
        from safetensors import safe_open

        try:
            with safe_open(path / "model.safetensors", "pt") as f:  # reads the header only
                return {name: path / "model.safetensors" for name in f.keys()}
        except Exception as err:
            fail(folder, f"model.safetensors is not readable ({str(err).splitlines()[0]})")
    found = "only PyTorch .bin weights; save them with safetensors" if list(path.glob("*.bin")) else "no weights"
    fail(folder, f"{found} (expected model.safetensors or model.safetensors.index.json)")


def check_weights(folder: str, layer_index: int) -> None:
    """The embedding and every layer up to `layer_index` are in the weight files."""
    names = weight_files(folder)
    needed = ["embed_tokens.weight"] + [f"layers.{i}.{hf}.weight" for i in range(layer_index + 1) for hf in LAYER_NAMES]
    for name in needed:
        if not any(key.endswith(name) for key in names):
            fail(folder, f"the weights have no tensor {name}")


def tokenizer_of(folder: str):
    present = [name for name in TOKENIZER_FILES if (Path(folder) / name).is_file()]
    if not present:
        fail(folder, f"no tokenizer: none of {', '.join(TOKENIZER_FILES)}")
    hf = transformers()
    try:
        return hf.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as err:
        fail(folder, f"the tokenizer ({', '.join(present)}) does not load: {str(err).splitlines()[0]}")


def token_sequences(text: str, tokenizer, seq_len: int, source: str) -> np.ndarray:
    """The text's tokens as non-overlapping sequences [N, seq_len] (int64), each starting with the
    tokenizer's BOS token where it has one, as the model saw text in pretraining."""
    # line by line (ends kept), so that a large file never becomes one giant tokenizer call
    ids = tokenizer(text.splitlines(keepends=True), add_special_tokens=False)["input_ids"]
    stream = np.fromiter((token for line in ids for token in line), dtype=np.int64)
    bos = tokenizer.bos_token_id
    body = seq_len - (bos is not None)
    count = len(stream) // body
    if count < 1:
        raise DataError(f"{source}: {len(stream)} tokens are fewer than data.seq_len={seq_len}")
    sequences = stream[: count * body].reshape(count, body)
    if bos is not None:
        sequences = np.concatenate([np.full((count, 1), bos, np.int64), sequences], axis=1)
    return sequences


def load_teacher(checkpoint: Checkpoint, layer_index: int, device: str = "cpu"):
    """(the truncated base model, layers 0..layer_index, in eval mode on `device`; the teacher
    layer's state dict under models/npt.TeacherLayer's names, float32).

    Only the embedding and the first layer_index + 1 layers are loaded (a config with that many
    layers), never the rest of the model or its LM head. On a GPU the model computes in the
    checkpoint's dtype (bf16 for most), on a CPU in float32."""
    config = copy.deepcopy(checkpoint.config)
    config.num_hidden_layers = layer_index + 1
    if getattr(config, "layer_types", None):
        config.layer_types = config.layer_types[: layer_index + 1]
    dtype = (getattr(config, "dtype", None) or torch.float32) if device.startswith("cuda") else torch.float32
    model = transformers().AutoModel.from_pretrained(checkpoint.folder, config=config, local_files_only=True,
                                                     dtype=dtype)
    model.to(device).eval()
    layer = model.layers[layer_index].state_dict()
    state = {}
    for name, tensor in layer.items():
        module, _, kind = name.rpartition(".")
        state[f"{LAYER_NAMES[module]}.{kind}"] = tensor.detach().float().cpu()
    return model, state


def hidden_states(model, layer_index: int, sequences: np.ndarray, batch_size: int = 8):
    """The hidden states entering layer `layer_index` for each sequence, [N, seq_len, d_model], in
    the model's dtype on the CPU: the input the model's own layer receives (a hook on it), so
    whatever the library does before the layer (embedding scale, masks) is what the teacher sees."""
    captured = []
    hook = model.layers[layer_index].register_forward_pre_hook(
        lambda module, args, kwargs: captured.append((args[0] if args else kwargs["hidden_states"]).cpu()),
        with_kwargs=True)
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for start in range(0, len(sequences), batch_size):
                model(torch.from_numpy(sequences[start:start + batch_size]).to(device), use_cache=False)
    finally:
        hook.remove()
    return torch.cat(captured)
