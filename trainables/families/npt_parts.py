"""npt's data and teacher (seed 003): the token sequences (synthetic, or text read as bytes or by
a checkpoint's tokenizer) and the frozen layer they train against (a random Llama-style layer, or
layer `model.layer_index` of a local Hugging Face checkpoint over the hidden states its earlier
layers give the text). trainables/families/npt.py builds the family's parts from them."""

from __future__ import annotations

import numpy as np
import torch

from losstune.data import DataError, hold_out
from losstune.data.npt import BYTE_VOCAB, read_text, synthetic_tokens, text_tokens
from losstune.data.npt_checkpoint import hidden_states, load_teacher, read_checkpoint, token_sequences
from losstune.models.npt import LayerShape, NPTModel, TeacherLayer, random_teacher_model


def vocab_size(cfg) -> int:
    return BYTE_VOCAB if cfg.data.path else cfg.data.vocab


def read_sequences(path: str, cfg, tokenizer) -> np.ndarray:
    if tokenizer is None:
        sequences = text_tokens(path, cfg.data.seq_len)
    else:
        sequences = token_sequences(read_text(path).decode("utf-8"), tokenizer, cfg.data.seq_len, path)
    return sequences[: cfg.data.max_sequences or None]


def load_arrays(cfg, tokenizer=None):
    """(train sequences, val sequences), int64 [N, seq_len]: synthetic, or text read as bytes or
    by a checkpoint's tokenizer."""
    d = cfg.data
    if not d.path:
        return (synthetic_tokens(d.num_train, d.seq_len, d.vocab, d.seed, d.branching),
                synthetic_tokens(d.num_val, d.seq_len, d.vocab, d.seed + 1, d.branching))
    train = read_sequences(d.path, cfg, tokenizer)
    if d.val_path:
        return train, read_sequences(d.val_path, cfg, tokenizer)
    return hold_out((train,), d.val_fraction, d.path, "sequences")


def checkpoint_of(cfg):
    """The checked Hugging Face checkpoint of `model.checkpoint_dir`, or None without one."""
    m = cfg.model
    if not m.checkpoint_dir:
        return None
    checkpoint = read_checkpoint(m.checkpoint_dir, m.layer_index, cfg.data.seq_len)
    if not cfg.data.path:
        raise DataError("data.path: a model.checkpoint_dir layer trains on real text: give a UTF-8 text file (--data)")
    return checkpoint


def random_teacher_parts(cfg):
    """The random Llama-style teacher over token ids: (model, train tokens, val tokens)."""
    train, val = load_arrays(cfg)
    m = cfg.model
    shape = LayerShape(d_model=m.d_model, heads=m.heads, d_ffn=m.d_ffn, rope_theta=m.rope_theta)
    model = random_teacher_model(vocab_size(cfg), shape, m.np_rank, m.layer_index, m.train_mlp, m.teacher_seed)
    return model, torch.from_numpy(train), torch.from_numpy(val)


def checkpoint_parts(cfg, checkpoint):
    """The checkpoint's layer as the teacher, over the hidden states its earlier layers give the
    tokenised text, computed once here (on this worker's device: its own GPU where it has one) and
    held for the trial: (model, train states, val states), states [N, seq_len, d_model]."""
    # here, not at the top: loads accelerate only where this runs
    from accelerate import PartialState

    device = str(PartialState().device)  # the run's Accelerate state: cuda:<local rank>, or cpu
    m = cfg.model
    return checkpoint_model(checkpoint, m.layer_index, load_arrays(cfg, checkpoint.tokenizer), device, m.np_rank,
                            m.train_mlp)


def checkpoint_model(checkpoint, layer_index: int, token_sets, device: str, np_rank: int, train_mlp: bool = False):
    """(NPTModel over hidden states with the checkpoint's layer `layer_index` as its teacher, then
    the hidden states entering that layer for each of `token_sets`, on the CPU). The earlier
    layers run once on `device` and are freed."""
    earlier_layers, state = load_teacher(checkpoint, layer_index, device)
    states = [hidden_states(earlier_layers, layer_index, tokens) for tokens in token_sets]
    del earlier_layers
    if device.startswith("cuda"):
        torch.cuda.empty_cache()  # the earlier layers' memory, back for training
    teacher = TeacherLayer(checkpoint.shape)
    teacher.load_state_dict(state)  # strict: every tensor of the layer, and nothing else
    return NPTModel(torch.nn.Identity(), teacher, np_rank, train_mlp), *states
