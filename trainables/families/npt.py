"""npt family (seed 003): single-layer NPT training. The NP component learns v_a, v_b from a frozen
teacher layer's attention output so that the rank-1-modulated MLP alone reproduces the layer.

Loss: the seed's six terms with its weights (direct_mlp 10, attention_encoding 5, fidelity 1,
regularization 0.01, modulation_guidance 2, info_bottleneck 0.5), and three optional ones
(decomposed target, projection consistency, orthogonality 0.01). Stages (the seed's
`get_stage_weights`, which it names but does not define): stage 1, the first `stage1_steps`
optimiser steps, uses the weights as documented; stage 2 multiplies the auxiliary terms that
teach the scalar what to encode (attention_encoding, modulation_guidance, info_bottleneck) by
`stage2_aux_factor`, so fidelity to the teacher leads once the encoding is learned. Curriculum:
the seed's attention-norm quantile mask, off by default (the seed's combined loss has none; it is
its Phase 3). Adaptive weighting (off by default, as in the seed): gradient-norm balancing over the
shared trainable parameters replaces the static weights. Presets `phase1` ... `phase4` are the
seed's "Implementation Priority", each adding to the one before.

Health (seed "Monitoring Recommendations"), stops after `health.grace_epochs`: the modulation
scalar's variance collapsing, the v_a / v_b norms exploding or vanishing, and the modulation
diverging: the layer's fidelity MSE over that of the same layer unmodulated (v_b = 0: h + MLP(h)),
`val/fidelity_vs_plain`, above `health.max_fidelity_vs_plain`. The seed's combined loss without
its Phase 3 curriculum does that here: its guidance term's -0.1 var(v_a . n) is unbounded below,
and in the default run v_a's norm went from 0.07 to 420 and the fidelity MSE from 0.011 to 351
within 10 epochs (with the curriculum: 0.29 and 0.0113).

Teacher: a random Llama-style layer over token ids (`model.teacher_seed`), or, the seed's own
setting, layer `model.layer_index` of a local Hugging Face checkpoint (`model.checkpoint_dir`,
data/npt_checkpoint.py), fed the hidden states its earlier layers give the tokenised text
(trainables/families/npt_parts.py).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch.utils.data import TensorDataset

from losstune.models.npt import NPTTraining
from losstune.trainables.family_api import Objective, Parts
from losstune.trainables.families import npt_config as settings
from losstune.trainables.families.npt_config import OPTIONAL_TERMS, TERMS
from losstune.trainables.families.npt_parts import checkpoint_of, checkpoint_parts, load_arrays, random_teacher_parts
from losstune.data.npt_checkpoint import layer_shape, read_config
from losstune.losses import npt as L
from losstune.losses.npt import balanced_weights, gradient_norms, modulation_scalar

OBJECTIVE = Objective("val/fidelity_mse", "min")
WATCHED_VAL_METRICS = ("fidelity_vs_plain",)
# each loss weight whose term only exists while a switch is on (a sweep warns when it tunes one that is off)
TERM_SWITCHES = {"loss.weights.info_bottleneck": "loss.use_info_bottleneck", "loss.weights.decomposed": "loss.use_decomposed",
                 "loss.weights.projection_consistency": "loss.use_projection_consistency",
                 "loss.weights.orthogonality": "loss.use_orthogonality"}
# the seed's combined loss ("Updated Loss Architecture"); info_bottleneck can be left out (Phase 1)
AUXILIARY = ("attention_encoding", "modulation_guidance", "info_bottleneck")  # scaled down in stage 2


# the family's settings, under the names the contract reads (trainables/family_api.py)
Config, PRESETS, SMOKE = settings.Config, settings.PRESETS, settings.SMOKE


def trained_config(cfg):
    """The config as trained: with a checkpoint the layer's sizes and rotary base are the
    checkpoint's, whatever model.d_model, heads, d_ffn and rope_theta said (a smoke sweep's
    best_config.json recorded d_model 32 for a 64-wide layer)."""
    m = cfg.model
    if not m.checkpoint_dir:
        return cfg
    shape = layer_shape(m.checkpoint_dir, read_config(m.checkpoint_dir), m.layer_index, cfg.data.seq_len)
    return dataclasses.replace(cfg, model=dataclasses.replace(m, d_model=shape.d_model, heads=shape.heads,
                                                              d_ffn=shape.d_ffn, rope_theta=shape.rope_theta))


def check_data(cfg) -> int:
    checkpoint = checkpoint_of(cfg)
    return len(load_arrays(cfg, checkpoint.tokenizer if checkpoint else None)[0])


def enabled_terms(cfg) -> list[str]:
    loss = cfg.loss
    flags = {"info_bottleneck": loss.use_info_bottleneck, "decomposed": loss.use_decomposed,
             "projection_consistency": loss.use_projection_consistency, "orthogonality": loss.use_orthogonality}
    return [name for name in TERMS + OPTIONAL_TERMS if flags.get(name, True)]


def build(cfg) -> Parts:
    checkpoint = checkpoint_of(cfg)
    model, train, val = random_teacher_parts(cfg) if checkpoint is None else checkpoint_parts(cfg, checkpoint)
    return Parts(NPTTraining(model, len(enabled_terms(cfg))), TensorDataset(train), TensorDataset(val), {})


def term_weights(cfg) -> dict:
    """The documented weights; with adaptive weighting 1 each (the balancer sets them)."""
    if cfg.stages.adaptive:
        return {name: 1.0 for name in TERMS + OPTIONAL_TERMS}
    return dict(cfg.loss.weights.__dict__)


def on_step_start(model, step: int, cfg) -> None:
    """The loop's count of optimiser steps, which the stages, the curriculum and the adaptive
    weighting follow (counted here in loss_terms, SAM's two passes made it count twice)."""
    model.step.fill_(step)


def loss_terms(model, batch, cfg):
    inner = getattr(model, "module", model)  # the NPTTraining under DDP
    step = int(inner.step)
    out = model(batch[0])
    s, loss = cfg.stages, cfg.loss
    mask = None
    if s.curriculum:
        mask = L.curriculum_mask(out["attention"], step, (s.curriculum_step1, s.curriculum_step2),
                                 (s.curriculum_quantile1, s.curriculum_quantile2))
    terms = {
        "direct_mlp": L.direct_mlp(out, mask),
        "attention_encoding": L.attention_encoding(out, mask),
        "fidelity": L.fidelity(out, mask),
        "regularization": L.regularization(out, mask),
        "modulation_guidance": L.modulation_guidance(out, mask, loss.guidance_variance_weight),
    }
    if loss.use_info_bottleneck:
        terms["info_bottleneck"] = L.info_bottleneck(out, mask, loss.info_bottleneck_beta)
    if loss.use_decomposed:
        terms["decomposed"] = L.decomposed_target(out, mask)
    if loss.use_projection_consistency:
        terms["projection_consistency"] = L.projection_consistency(out, inner.model.teacher.mlp.gate.weight, mask)
    if loss.use_orthogonality:
        terms["orthogonality"] = L.orthogonality(out, loss.orthogonality_rank, mask)
    scalar = L.modulation_scalar(out).detach()
    health = {"scalar_var": scalar.var(), "va_norm": out["v_a"].detach().norm(dim=-1).mean(),
              "vb_norm": out["v_b"].detach().norm(dim=-1).mean(),
              "stage": torch.tensor(1.0 if step < s.stage1_steps else 2.0),
              "curriculum_kept": torch.tensor(1.0) if mask is None else mask.float().mean()}
    return terms, health


def combine(model, weighted: dict, cfg):
    """Stage weights, or the adaptive weights. Returns (total, health stats)."""
    inner = getattr(model, "module", model)
    s = cfg.stages
    step = int(inner.step)
    if not s.adaptive:
        stage2 = step >= s.stage1_steps
        factor = {name: s.stage2_aux_factor if stage2 and name in AUXILIARY else 1.0 for name in weighted}
        return sum(factor[name] * value for name, value in weighted.items()), {}
    names = list(weighted)
    # once per optimiser step: SAM's second pass, at the perturbed weights, reuses the weights
    if step % s.adaptive_every == 0 and step != int(inner.measured_step):
        params = [p for p in inner.parameters() if p.requires_grad]
        norms = gradient_norms([weighted[n] for n in names], params)
        inner.ema_grad_norms.mul_(s.adaptive_alpha).add_((1 - s.adaptive_alpha) * norms)
        inner.measured_step.fill_(step)
    weights = balanced_weights(inner.ema_grad_norms)
    total = sum(w * weighted[n] for w, n in zip(weights, names))
    return total, {f"weight_{n}": w for n, w in zip(names, weights)}


@torch.no_grad()
def val_metrics(model, batch, cfg, extras):
    """Per sequence: fidelity MSE to the teacher on all positions, and that of the layer without
    its modulation (h + MLP(h)), for `summarise_val`'s ratio; the cosine between the modulation's
    effect on the MLP, MLP_mod(h) - MLP(h), and the attention output."""
    out = model(batch[0])
    teacher = out["teacher_output"].float()
    fidelity = (out["npt_output"].float() - teacher).pow(2).mean(dim=(1, 2))
    unmodulated = (out["hidden"] + out["mlp_plain"]).float()
    effect = out["mlp_modulated"] - out["mlp_plain"]
    cosine = torch.nn.functional.cosine_similarity(effect.float(), out["attention"].float(), dim=-1).mean(1)
    scalar = modulation_scalar(out).float()
    return {"fidelity_mse": fidelity, "plain_fidelity_mse": (unmodulated - teacher).pow(2).mean(dim=(1, 2)),
            "attn_cosine": cosine, "scalar_var": scalar.var(dim=1)}


def summarise_val(means: dict, cfg) -> dict:
    """The fidelity of the modulated layer over the unmodulated one's, over the set."""
    plain = means["plain_fidelity_mse"]
    return {**means, "fidelity_vs_plain": means["fidelity_mse"] / plain if plain > 0 else math.inf}


def stop_reason(metrics, cfg) -> str:
    h = cfg.health
    if metrics["epoch"] <= h.grace_epochs:
        return ""
    if metrics.get("health/scalar_var", math.inf) < h.min_scalar_var:
        return "scalar_collapse"
    norms = (metrics.get("health/va_norm", 1.0), metrics.get("health/vb_norm", 1.0))
    if max(norms) > h.max_vector_norm:
        return "modulation_exploded"
    if min(norms) < h.min_vector_norm:
        return "modulation_vanished"
    if metrics.get("health/fidelity_vs_plain", 0.0) > h.max_fidelity_vs_plain:
        return "modulation_diverged"
    return ""
