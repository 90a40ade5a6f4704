"""The npt loss terms (seed 003), each unweighted and averaged over the positions a mask keeps
(the curriculum's), and the gradient-norm balancing that the seed's adaptive weighting means.

`out` is NPTModel.forward's dict: hidden h, mlp_input n (= RMSNorm(h), what the modulation
multiplies), attention a, mlp_with_attention MLP(h + a), mlp_plain MLP(h), mlp_modulated
MLP_mod(h), v_a, v_b, npt_output, teacher_output. The seed names three pieces without defining
them; their definitions here:
  DirectMLPSupervisionLoss  MSE(MLP_mod(h), a + MLP(h + a)): the modulated MLP alone must produce
                            what attention and the MLP together added to h.
  AttentionEncodingLoss     1 - cos(v_a, a) per position: v_a points along the attention output,
                            so the scalar v_a . n measures how much of it the position carries.
  get_stage_weights         see trainables/families/npt.py: stage 1 the documented weights, stage 2 the
                            auxiliary terms scaled down.
With a single NPT layer and nothing after it, fidelity MSE(h + MLP_mod(h), h + a + MLP(h + a)) is
the same quantity as direct_mlp; the seed weights them separately (10 and 1), so both are kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-position values [B, T] over the positions where mask [B, T] is true."""
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def mse_per_position(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).mean(-1)


def modulation_scalar(out: dict) -> torch.Tensor:
    """v_a . n per position [B, T]: the one number through which attention modulates the MLP."""
    return (out["v_a"] * out["mlp_input"]).sum(-1)


def direct_mlp(out, mask=None):
    return masked_mean(mse_per_position(out["mlp_modulated"], out["attention"] + out["mlp_with_attention"]), mask)


def attention_encoding(out, mask=None):
    return masked_mean(1 - F.cosine_similarity(out["v_a"], out["attention"], dim=-1), mask)


def fidelity(out, mask=None):
    return masked_mean(mse_per_position(out["npt_output"], out["teacher_output"]), mask)


def regularization(out, mask=None):
    """The seed's |v_a|^2 + |v_b|^2, as per-element means."""
    return masked_mean(out["v_a"].pow(2).mean(-1) + out["v_b"].pow(2).mean(-1), mask)


def modulation_guidance(out, mask=None, variance_weight: float = 0.1):
    """Seed 1: MSE(sigmoid(v_a . n), sigmoid(|a| / |n|)) - 0.1 var(v_a . n). The variance part is
    unbounded below by design (it pushes against the scalar's collapse); the importance uses the
    same n the scalar multiplies."""
    scalar = modulation_scalar(out)
    importance = out["attention"].norm(dim=-1) / out["mlp_input"].norm(dim=-1).clamp_min(1e-6)
    fit = masked_mean((torch.sigmoid(scalar) - torch.sigmoid(importance)).pow(2), mask)
    kept = scalar[mask] if mask is not None else scalar.flatten()
    spread = kept.var() if kept.numel() > 1 else scalar.new_zeros(())
    return fit - variance_weight * spread


def info_bottleneck(out, mask=None, beta: float = 0.01):
    """Seed 4: beta |cos(v_a, h)| - |cos(v_a, a)|, mutual information approximated by correlation."""
    with_hidden = F.cosine_similarity(out["v_a"], out["hidden"], dim=-1).abs()
    with_attention = F.cosine_similarity(out["v_a"], out["attention"], dim=-1).abs()
    return beta * masked_mean(with_hidden, mask) - masked_mean(with_attention, mask)


def decomposed_target(out, mask=None):
    """Seed 3, made to agree with direct_mlp. The seed splits MLP_mod(h) into an "attention
    component" that must reconstruct a and an "MLP component" that must reconstruct MLP(h + a):
    the two targets add up to direct_mlp's a + MLP(h + a). Its slice `[..., :a.size(-1)]` takes
    all d_model features, leaving an "MLP component" that is identically zero; the split here is
    along the attention direction u = a / |a| and across it. With e = MLP_mod(h) - (a + MLP(h + a)),
    direct_mlp's error: the attention part is (e . u)^2, the error along u as one number (not
    diluted over d_model features), the MLP part the mean squared error of e across u; 0.5 each.
    Both are 0 where direct_mlp is, so the terms never pull apart. (The earlier reading targeted
    a along u and only the correction MLP(h + a) - MLP(h) across it: at direct_mlp's optimum it
    left 1/2 mean((c . u)^2 u^2), 0.0754 in the audit's measurement.)"""
    u = F.normalize(out["attention"], dim=-1)
    error = out["mlp_modulated"] - (out["attention"] + out["mlp_with_attention"])
    along = (error * u).sum(-1)
    across = error - along.unsqueeze(-1) * u
    attention_part = masked_mean(along.pow(2), mask)
    mlp_part = masked_mean(across.pow(2).mean(-1), mask)
    return 0.5 * attention_part + 0.5 * mlp_part


def projection_consistency(out, gate_weight: torch.Tensor, mask=None):
    """Seed 5: v_b close to its mean over the sequence, and aligned with W_gate a (the gate change
    the attention output would make)."""
    v_b = out["v_b"]
    consistency = masked_mean(mse_per_position(v_b, v_b.mean(dim=1, keepdim=True).expand_as(v_b)), mask)
    alignment = masked_mean(F.cosine_similarity(v_b, F.linear(out["attention"], gate_weight), dim=-1), mask)
    return consistency + (1 - alignment)


def orthogonality(out, rank: int = 10, mask=None):
    """Seed 7: v_a's squared projections on the top `rank` principal directions of h (from
    torch.svd_lowrank). The seed writes `v_a @ v.T`; v is [d_model, q], so it is `v_a @ v`."""
    hidden = out["hidden"].reshape(-1, out["hidden"].shape[-1])
    _, _, v = torch.svd_lowrank(hidden.detach(), q=rank)
    return masked_mean((out["v_a"] @ v).pow(2).mean(-1), mask)


def curriculum_mask(attention: torch.Tensor, step: int, steps: tuple[int, ...], quantiles: tuple[float, ...]):
    """Seed 6: before steps[0] only positions whose attention norm is under the quantiles[0]
    quantile, before steps[1] under quantiles[1], then all (None). The quantile is the batch's."""
    norms = attention.norm(dim=-1)
    for until, quantile in zip(steps, quantiles):
        if step < until:
            return norms < torch.quantile(norms.float().flatten(), quantile).to(norms.dtype)
    return None


def gradient_norms(terms: list[torch.Tensor], params: list[torch.Tensor]) -> torch.Tensor:
    """|grad of each term w.r.t. the shared trainable parameters|, one backward pass each. (The
    seed takes grad(loss, loss), which is always 1: its weights could never move.)"""
    norms = []
    for term in terms:
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        total = torch.zeros((), device=term.device)
        for grad in grads:
            if grad is not None:  # a term that does not reach a parameter adds nothing
                total = total + grad.float().pow(2).sum()
        norms.append(total.sqrt())
    return torch.stack(norms)


def balanced_weights(ema_norms: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Seed 2's inverse gradient weighting: mean(G) / (G_i + eps), normalised to sum 1."""
    weights = ema_norms.mean() / (ema_norms + eps)
    return weights / weights.sum()
