"""npt data: token sequences [N, seq_len] (int64) from a synthetic Markov chain or a UTF-8 text file.

Synthetic: a sparse Markov chain over a small vocabulary, each token followed by one of a few
tokens with fixed probabilities, so a position's context (what attention reads) carries
information. The chain depends only on the vocabulary and branching, not on the data seed: train
and validation streams come from the same chain. Real: a text file read as bytes (vocabulary 256),
or by a checkpoint's tokenizer (data/npt_checkpoint.py).
"""

from __future__ import annotations

import numpy as np

from losstune.data import DataError, existing_file

BYTE_VOCAB = 256


def markov_chain(vocab: int, branching: int):
    """(successors [vocab, branching], probabilities [vocab, branching])."""
    rng = np.random.default_rng(7)
    successors = np.stack([rng.choice(vocab, size=branching, replace=False) for _ in range(vocab)])
    probabilities = rng.dirichlet(np.ones(branching), size=vocab)
    return successors, probabilities


def synthetic_tokens(count: int, seq_len: int, vocab: int = 64, seed: int = 0, branching: int = 3) -> np.ndarray:
    """`count` sequences of `seq_len` tokens cut from one stream of the chain."""
    successors, probabilities = markov_chain(vocab, branching)
    rng = np.random.default_rng(seed)
    cumulative = probabilities.cumsum(1)
    stream = np.empty(count * seq_len, np.int64)
    token = int(rng.integers(vocab))
    draws = rng.random(len(stream))
    for i, u in enumerate(draws):
        stream[i] = token
        token = int(successors[token, min(int(np.searchsorted(cumulative[token], u)), branching - 1)])
    return stream.reshape(count, seq_len)


def read_text(path: str) -> bytes:
    """A UTF-8 text file's bytes, checked: there, readable, not empty, UTF-8."""
    file = existing_file(path)
    try:
        raw = file.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: unreadable ({err.strerror})") from None
    if not raw:
        raise DataError(f"{path}: empty file")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start})") from None
    return raw


def text_tokens(path: str, seq_len: int) -> np.ndarray:
    """The file's bytes as non-overlapping sequences of `seq_len` tokens."""
    raw = read_text(path)
    count = len(raw) // seq_len
    if count < 1:
        raise DataError(f"{path}: {len(raw)} bytes are fewer than data.seq_len={seq_len}")
    return np.frombuffer(raw[: count * seq_len], dtype=np.uint8).astype(np.int64).reshape(count, seq_len)
