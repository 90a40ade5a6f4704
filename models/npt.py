"""The npt model (seed 003): a frozen Llama-style teacher decoder layer, and the NPT layer that
replaces its attention residual by a rank-1 modulation of the same MLP.

Teacher (Llama, Mistral, Qwen2): a = Attn(RMSNorm1(h)), causal, rotary positions, grouped-query
where the checkpoint has fewer key/value heads; y = h + a + MLP(h + a), where
MLP(x) = W_down(silu(W_gate n) * W_up n) with n = RMSNorm2(x). Its weights are random (drawn from
a fixed seed) or a Hugging Face checkpoint's layer (data/npt_checkpoint.py).

NPT: the NP component maps the attention output a to v_a (d_model) and v_b (d_ffn) through a rank
`np_rank` bottleneck; the modulated MLP uses W_gate' = W_gate + v_b v_a^T per token, applied
without building the matrix: W_gate' n = W_gate n + v_b (v_a . n). Its output is y_npt = h +
MLP_mod(h): the attention output enters only through the modulation. The MLP weights are the
teacher's, shared and frozen unless `train_mlp`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LayerShape:
    """One Llama-style decoder layer's sizes and options: the family's own (random teacher) or a
    checkpoint's (data/npt_checkpoint.py reads them from its config.json)."""

    d_model: int = 256
    heads: int = 4
    d_ffn: int = 688
    kv_heads: int = 0  # grouped-query attention: key/value heads; 0 = heads
    head_dim: int = 0  # 0 = d_model // heads
    rope_theta: float = 10000.0
    # a checkpoint's rotary frequencies where its rope is scaled (Llama 3's `llama3`, `linear`,
    # `yarn`), with the factor on cos and sin (yarn's); () = Llama's plain 1 / theta^(2i/d)
    inv_freq: tuple[float, ...] = ()
    rope_scale: float = 1.0
    eps: float = 1e-6  # RMSNorm
    qkv_bias: bool = False  # Qwen2: biases on q, k, v only
    o_bias: bool = False
    mlp_bias: bool = False

    @property
    def kv(self) -> int:
        return self.kv_heads or self.heads

    @property
    def head_size(self) -> int:
        return self.head_dim or self.d_model // self.heads

    def rotary_frequencies(self) -> torch.Tensor:
        if self.inv_freq:
            return torch.tensor(self.inv_freq, dtype=torch.float32)
        return plain_frequencies(self.head_size, self.rope_theta)


def plain_frequencies(dim: int, theta: float) -> torch.Tensor:
    return 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)


def rotary(x: torch.Tensor, inv_freq: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Rotary position embedding of [B, heads, T, head_dim] (Llama's rotate-half form), positions
    0 .. T-1 at frequencies `inv_freq` [head_dim / 2], cos and sin times `scale`."""
    t, dim = x.shape[-2], x.shape[-1]
    angles = torch.outer(torch.arange(t, device=x.device, dtype=torch.float32), inv_freq.to(x.device, torch.float32))
    both = torch.cat([angles, angles], -1)
    cos, sin = (both.cos() * scale).to(x.dtype), (both.sin() * scale).to(x.dtype)
    first, second = x[..., : dim // 2], x[..., dim // 2:]
    return x * cos + torch.cat([-second, first], -1) * sin


class Attention(nn.Module):
    """Causal self-attention with rotary positions; grouped-query when kv < heads (each key/value
    head serves heads / kv consecutive query heads, as Hugging Face's repeat_kv)."""

    def __init__(self, shape: LayerShape):
        super().__init__()
        self.heads, self.kv, self.head_size, self.rope_scale = shape.heads, shape.kv, shape.head_size, shape.rope_scale
        # derived from the shape, so not in the state dict (nor in a checkpoint's layer)
        self.register_buffer("inv_freq", shape.rotary_frequencies(), persistent=False)
        inner, kv_inner = shape.heads * shape.head_size, shape.kv * shape.head_size
        self.q = nn.Linear(shape.d_model, inner, bias=shape.qkv_bias)
        self.k = nn.Linear(shape.d_model, kv_inner, bias=shape.qkv_bias)
        self.v = nn.Linear(shape.d_model, kv_inner, bias=shape.qkv_bias)
        self.o = nn.Linear(inner, shape.d_model, bias=shape.o_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        split = lambda z, heads: z.view(b, t, heads, self.head_size).transpose(1, 2)  # noqa: E731
        q = rotary(split(self.q(x), self.heads), self.inv_freq, self.rope_scale)
        k = rotary(split(self.k(x), self.kv), self.inv_freq, self.rope_scale)
        out = F.scaled_dot_product_attention(q, k, split(self.v(x), self.kv), is_causal=True,
                                             enable_gqa=self.kv != self.heads)
        return self.o(out.transpose(1, 2).reshape(b, t, self.heads * self.head_size))


class SwiGLU(nn.Module):
    """W_down(silu(W_gate n) * W_up n); `gate_extra` is added to W_gate n (the NPT modulation)."""

    def __init__(self, d_model: int, d_ffn: int, bias: bool = False):
        super().__init__()
        self.gate = nn.Linear(d_model, d_ffn, bias=bias)
        self.up = nn.Linear(d_model, d_ffn, bias=bias)
        self.down = nn.Linear(d_ffn, d_model, bias=bias)

    def forward(self, n: torch.Tensor, gate_extra: torch.Tensor | None = None) -> torch.Tensor:
        gate = self.gate(n) if gate_extra is None else self.gate(n) + gate_extra
        return self.down(F.silu(gate) * self.up(n))


class TeacherLayer(nn.Module):
    def __init__(self, shape: LayerShape):
        super().__init__()
        self.attn_norm = nn.RMSNorm(shape.d_model, eps=shape.eps)
        self.attn = Attention(shape)
        self.mlp_norm = nn.RMSNorm(shape.d_model, eps=shape.eps)
        self.mlp = SwiGLU(shape.d_model, shape.d_ffn, shape.mlp_bias)

    def attention(self, h: torch.Tensor) -> torch.Tensor:
        return self.attn(self.attn_norm(h))

    def mlp_of(self, x: torch.Tensor) -> torch.Tensor:
        """MLP(x), with the layer's pre-MLP RMSNorm."""
        return self.mlp(self.mlp_norm(x))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = self.attention(h)
        return h + a + self.mlp_of(h + a)


class TokenFront(nn.Module):
    """Token ids -> the hidden states entering the NPT layer: an embedding and `layers` decoder
    layers before it (the family's random teacher; a checkpoint's come precomputed)."""

    def __init__(self, vocab: int, shape: LayerShape, layers: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, shape.d_model)
        self.prefix = nn.ModuleList(TeacherLayer(shape) for _ in range(layers))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)
        for layer in self.prefix:
            h = layer(h)
        return h


class NPComponent(nn.Module):
    """attention output [.., d_model] -> (v_a [.., d_model], v_b [.., d_ffn]) through rank r."""

    def __init__(self, d_model: int, d_ffn: int, rank: int):
        super().__init__()
        self.down = nn.Linear(d_model, rank, bias=False)
        self.to_a = nn.Linear(rank, d_model, bias=False)
        self.to_b = nn.Linear(rank, d_ffn, bias=False)
        # small v_a, v_b at the start: the modulated MLP begins as the plain MLP
        for layer in (self.to_a, self.to_b):
            nn.init.normal_(layer.weight, std=0.02 / math.sqrt(rank))

    def forward(self, attention_output: torch.Tensor):
        z = self.down(attention_output)
        return self.to_a(z), self.to_b(z)


def rank_one_update(n: torch.Tensor, v_a: torch.Tensor, v_b: torch.Tensor) -> torch.Tensor:
    """(v_b v_a^T) n per token, as v_b (v_a . n): W_gate' n = W_gate n + this, with no
    d_ffn x d_model matrix built."""
    return v_b * (v_a * n).sum(-1, keepdim=True)


class NPTModel(nn.Module):
    """A frozen front (token ids -> hidden states, or nn.Identity where the inputs are hidden
    states already), the frozen teacher layer and the trainable NP component. `forward` returns
    every tensor the losses need."""

    def __init__(self, front: nn.Module, teacher: TeacherLayer, np_rank: int = 32, train_mlp: bool = False):
        super().__init__()
        self.front, self.teacher = front, teacher
        self.np = NPComponent(teacher.mlp_norm.weight.numel(), teacher.mlp.gate.out_features, np_rank)
        for module in (self.front, self.teacher):
            module.requires_grad_(False)
        self.teacher.mlp.requires_grad_(train_mlp)

    def hidden_states(self, inputs: torch.Tensor) -> torch.Tensor:
        # stored hidden states may be bf16 (a checkpoint's dtype); the layer computes in its own
        return self.front(inputs).to(self.teacher.mlp_norm.weight.dtype)

    def forward(self, inputs: torch.Tensor) -> dict:
        with torch.no_grad():
            h = self.hidden_states(inputs)
            attention = self.teacher.attention(h)
            mlp_with_attention = self.teacher.mlp_of(h + attention)
            mlp_plain = self.teacher.mlp_of(h)
        n = self.teacher.mlp_norm(h)
        v_a, v_b = self.np(attention)
        mlp_modulated = self.teacher.mlp(n, gate_extra=rank_one_update(n, v_a, v_b))
        return {"hidden": h, "mlp_input": n, "attention": attention, "mlp_with_attention": mlp_with_attention,
                "mlp_plain": mlp_plain, "mlp_modulated": mlp_modulated, "v_a": v_a, "v_b": v_b,
                "npt_output": h + mlp_modulated, "teacher_output": h + attention + mlp_with_attention}


def random_teacher_model(vocab: int, shape: LayerShape = LayerShape(), np_rank: int = 32, layer_index: int = 0,
                         train_mlp: bool = False, teacher_seed: int = 0) -> NPTModel:
    """The NPT model over a random Llama-style teacher: embedding, `layer_index` earlier layers and
    the teacher, drawn from `teacher_seed`, so they are the same in every trial whatever the
    training seed."""
    with torch.random.fork_rng():
        torch.manual_seed(teacher_seed)
        front = TokenFront(vocab, shape, layer_index)
        teacher = TeacherLayer(shape)
    return NPTModel(front, teacher, np_rank, train_mlp)


class NPTTraining(nn.Module):
    """What one training run optimises and checkpoints: the model, the optimiser step the stages
    and curriculum follow (set by the training loop, which counts the steps), and the adaptive
    weighting's EMA of per-term gradient norms with the step it last measured them at."""

    def __init__(self, model: NPTModel, num_terms: int):
        super().__init__()
        self.model = model
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("ema_grad_norms", torch.zeros(num_terms))
        self.register_buffer("measured_step", torch.full((), -1, dtype=torch.long))

    def forward(self, inputs: torch.Tensor) -> dict:
        return self.model(inputs)
