"""Tiny local Hugging Face checkpoints for the npt tests: a decoder-only model built from
transformers' own config class (random weights, `save_pretrained`) and a byte-level BPE tokenizer
trained here with the `tokenizers` package, so nothing is downloaded."""

from __future__ import annotations

import codecs
import contextlib
import io
from pathlib import Path

# small enough for a CPU test, with grouped-query attention (2 key/value heads for 4 query heads)
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 64}


def corpus() -> str:
    """The Zen of Python (shipped with Python), each line numbered, a few times over: ~20 KB."""
    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints it
        import this
    lines = codecs.decode(this.s, "rot13").splitlines()
    return "".join(f"{round_}.{i} {line}\n" for round_ in range(24) for i, line in enumerate(lines))


def tokenizer(text: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator([text], trainers.BpeTrainer(vocab_size=320, special_tokens=["<unk>", "<s>", "</s>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def tiny_checkpoint(folder: Path, model_type: str = "llama", seed: int = 0, **config) -> Path:
    """`folder` holding a tiny `model_type` model (config.json, model.safetensors) and its
    tokenizer (tokenizer.json); `config` overrides TINY's fields."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fast = tokenizer(corpus())
    settings = {**TINY, "vocab_size": len(fast), "bos_token_id": fast.bos_token_id, "eos_token_id": fast.eos_token_id,
                **config}
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **settings))
    with torch.no_grad():  # no zero biases or unit norm weights: a mapping that drops one shows
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def text_file(folder: Path) -> Path:
    path = folder / "corpus.txt"
    path.write_text(corpus())
    return path
