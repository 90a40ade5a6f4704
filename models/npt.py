"""The npt model (seed 003): a frozen Llama-style teacher decoder layer, and the NPT layer that
replaces its attention residual by a rank-1 modulation of the same MLP.

Teacher (Llama): a = Attn(RMSNorm1(h)), causal, rotary positions; y = h + a + MLP(h + a), where
MLP(x) = W_down(silu(W_gate n) * W_up n) with n = RMSNorm2(x).

NPT: the NP component maps the attention output a to v_a (d_model) and v_b (d_ffn) through a rank
`np_rank` bottleneck; the modulated MLP uses W_gate' = W_gate + v_b v_a^T per token, applied
without building the matrix: W_gate' n = W_gate n + v_b (v_a . n). Its output is y_npt = h +
MLP_mod(h): the attention output enters only through the modulation. The MLP weights are the
teacher's, shared and frozen unless `train_mlp`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def rotary(x: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotary position embedding of [B, heads, T, head_dim] (Llama's rotate-half form)."""
    t, dim = x.shape[-2], x.shape[-1]
    inv_freq = 1.0 / theta ** (torch.arange(0, dim, 2, device=x.device, dtype=torch.float32) / dim)
    angles = torch.outer(torch.arange(t, device=x.device, dtype=torch.float32), inv_freq)
    cos, sin = torch.cat([angles, angles], -1).cos().to(x.dtype), torch.cat([angles, angles], -1).sin().to(x.dtype)
    first, second = x[..., : dim // 2], x[..., dim // 2:]
    return x * cos + torch.cat([-second, first], -1) * sin


class Attention(nn.Module):
    def __init__(self, d_model: int, heads: int, rope_theta: float):
        super().__init__()
        self.heads, self.rope_theta = heads, rope_theta
        self.q, self.k, self.v, self.o = (nn.Linear(d_model, d_model, bias=False) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        split = lambda z: z.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        q, k = rotary(split(self.q(x)), self.rope_theta), rotary(split(self.k(x)), self.rope_theta)
        out = F.scaled_dot_product_attention(q, k, split(self.v(x)), is_causal=True)
        return self.o(out.transpose(1, 2).reshape(b, t, d))


class SwiGLU(nn.Module):
    """W_down(silu(W_gate n) * W_up n); `gate_extra` is added to W_gate n (the NPT modulation)."""

    def __init__(self, d_model: int, d_ffn: int):
        super().__init__()
        self.gate = nn.Linear(d_model, d_ffn, bias=False)
        self.up = nn.Linear(d_model, d_ffn, bias=False)
        self.down = nn.Linear(d_ffn, d_model, bias=False)

    def forward(self, n: torch.Tensor, gate_extra: torch.Tensor | None = None) -> torch.Tensor:
        gate = self.gate(n) if gate_extra is None else self.gate(n) + gate_extra
        return self.down(F.silu(gate) * self.up(n))


class TeacherLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, d_ffn: int, rope_theta: float = 10000.0, eps: float = 1e-6):
        super().__init__()
        self.attn_norm = nn.RMSNorm(d_model, eps=eps)
        self.attn = Attention(d_model, heads, rope_theta)
        self.mlp_norm = nn.RMSNorm(d_model, eps=eps)
        self.mlp = SwiGLU(d_model, d_ffn)

    def attention(self, h: torch.Tensor) -> torch.Tensor:
        return self.attn(self.attn_norm(h))

    def mlp_of(self, x: torch.Tensor) -> torch.Tensor:
        """MLP(x), with the layer's pre-MLP RMSNorm."""
        return self.mlp(self.mlp_norm(x))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = self.attention(h)
        return h + a + self.mlp_of(h + a)


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
    """Frozen token embedding (+ optional frozen earlier layers), the frozen teacher layer and the
    trainable NP component. `forward` returns every tensor the losses need."""

    def __init__(self, vocab: int, d_model: int = 256, heads: int = 4, d_ffn: int = 688, np_rank: int = 32,
                 prefix_layers: int = 0, train_mlp: bool = False, rope_theta: float = 10000.0,
                 teacher_seed: int = 0):
        super().__init__()
        # the teacher is the same in every trial whatever the training seed
        with torch.random.fork_rng():
            torch.manual_seed(teacher_seed)
            self.embed = nn.Embedding(vocab, d_model)
            self.prefix = nn.ModuleList(TeacherLayer(d_model, heads, d_ffn, rope_theta) for _ in range(prefix_layers))
            self.teacher = TeacherLayer(d_model, heads, d_ffn, rope_theta)
        self.np = NPComponent(d_model, d_ffn, np_rank)
        for module in (self.embed, self.prefix, self.teacher):
            module.requires_grad_(False)
        self.teacher.mlp.requires_grad_(train_mlp)

    def hidden_states(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)
        for layer in self.prefix:
            h = layer(h)
        return h

    def forward(self, tokens: torch.Tensor) -> dict:
        with torch.no_grad():
            h = self.hidden_states(tokens)
            attention = self.teacher.attention(h)
            mlp_with_attention = self.teacher.mlp_of(h + attention)
            mlp_plain = self.teacher.mlp_of(h)
        n = self.teacher.mlp_norm(h)
        v_a, v_b = self.np(attention)
        mlp_modulated = self.teacher.mlp(n, gate_extra=rank_one_update(n, v_a, v_b))
        return {"hidden": h, "mlp_input": n, "attention": attention, "mlp_with_attention": mlp_with_attention,
                "mlp_plain": mlp_plain, "mlp_modulated": mlp_modulated, "v_a": v_a, "v_b": v_b,
                "npt_output": h + mlp_modulated, "teacher_output": h + attention + mlp_with_attention}


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

    def forward(self, tokens: torch.Tensor) -> dict:
        return self.model(tokens)
