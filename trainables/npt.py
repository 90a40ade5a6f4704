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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch.utils.data import TensorDataset

from losstune.trainables.config import ConfigError, above, at_least, merge, within
from losstune.trainables.loop_config import OptimConfig, ScheduleConfig, TrainConfig
from losstune.data import hold_out
from losstune.trainables.family_api import Objective, Parts

OBJECTIVE = Objective("val/fidelity_mse", "min")
WATCHED_VAL_METRICS = ("fidelity_vs_plain",)
# each loss weight whose term only exists while a switch is on (a sweep warns when it tunes one that is off)
TERM_SWITCHES = {"loss.weights.info_bottleneck": "loss.use_info_bottleneck", "loss.weights.decomposed": "loss.use_decomposed",
                 "loss.weights.projection_consistency": "loss.use_projection_consistency",
                 "loss.weights.orthogonality": "loss.use_orthogonality"}
# the seed's combined loss ("Updated Loss Architecture"); info_bottleneck can be left out (Phase 1)
TERMS = ("direct_mlp", "attention_encoding", "fidelity", "regularization", "modulation_guidance", "info_bottleneck")
OPTIONAL_TERMS = ("decomposed", "projection_consistency", "orthogonality")
AUXILIARY = ("attention_encoding", "modulation_guidance", "info_bottleneck")  # scaled down in stage 2


@dataclass(frozen=True)
class DataConfig:
    """The seed trains on a model's hidden states and names no data: these are the platform's."""

    path: str = ""  # a UTF-8 text file, read as bytes (vocabulary 256); "" = synthetic
    val_path: str = ""  # a second text file; "" = the last `val_fraction` of `path`'s sequences
    val_fraction: float = 0.1
    seq_len: int = 64
    vocab: int = 64  # synthetic only
    branching: int = 3  # synthetic only: successors per token in the Markov chain
    num_train: int = 2048  # synthetic sequences: 128 steps of 16 per epoch, past both curriculum steps
    num_val: int = 256
    seed: int = 0  # synthetic only; the validation stream uses seed + 1

    def __post_init__(self):
        within("val_fraction", self.val_fraction, 0.01, 0.9)
        at_least("seq_len", self.seq_len, 2)
        at_least("vocab", self.vocab, 2)
        within("branching", self.branching, 1, self.vocab)
        at_least("num_train", self.num_train, 1)
        at_least("num_val", self.num_val, 1)


@dataclass(frozen=True)
class ModelConfig:
    """The seed names no sizes; d_model 256 is the issue's measurement size, d_ffn Llama's 8/3 ratio."""

    d_model: int = 256
    heads: int = 4
    d_ffn: int = 688
    np_rank: int = 32  # the NP component's bottleneck
    prefix_layers: int = 0  # frozen teacher layers before the NPT layer
    train_mlp: bool = False  # the MLP weights are the teacher's, frozen unless this is set
    rope_theta: float = 10000.0
    teacher_seed: int = 0  # the frozen teacher (and embedding) are the same in every trial
    checkpoint_dir: str = ""  # a local Hugging Face checkpoint to take a real layer from

    def __post_init__(self):
        at_least("heads", self.heads, 1)
        if self.d_model % self.heads or (self.d_model // self.heads) % 2:
            raise ConfigError("d_model", f"must split into {self.heads} heads of even size, got {self.d_model}")
        at_least("d_ffn", self.d_ffn, 1)
        at_least("np_rank", self.np_rank, 1)
        at_least("prefix_layers", self.prefix_layers, 0)


@dataclass(frozen=True)
class LossWeights:
    direct_mlp: float = 10.0  # seed "Updated Loss Architecture": direct_mlp_weight=10.0
    attention_encoding: float = 5.0  # attention_encoding_weight=5.0
    fidelity: float = 1.0  # fidelity_weight=1.0
    regularization: float = 0.01  # regularization_weight=0.01
    modulation_guidance: float = 2.0  # modulation_guidance_weight=2.0
    info_bottleneck: float = 0.5  # info_bottleneck_weight=0.5
    decomposed: float = 1.0  # seed 3 (optional); no weight in the seed
    projection_consistency: float = 1.0  # seed 5 (optional); no weight in the seed
    orthogonality: float = 0.01  # seed 7: orth_loss * 0.01

    def __post_init__(self):
        for name, value in self.__dict__.items():
            at_least(name, value, 0.0)


@dataclass(frozen=True)
class LossConfig:
    info_bottleneck_beta: float = 0.01  # seed 4: InfoBottleneckLoss(beta=0.01)
    guidance_variance_weight: float = 0.1  # seed 1: scalar_loss + 0.1 * variance_loss
    orthogonality_rank: int = 10  # seed 7: torch.svd_lowrank(h_flat, q=10)
    use_info_bottleneck: bool = True  # seed's combined loss; its Phase 2 (off in `phase1`)
    use_decomposed: bool = False  # seed phase 2, not in the seed's combined loss
    use_projection_consistency: bool = False  # seed phase 3
    use_orthogonality: bool = False  # seed phase 4 (optional)
    weights: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self):
        at_least("info_bottleneck_beta", self.info_bottleneck_beta, 0.0)
        at_least("guidance_variance_weight", self.guidance_variance_weight, 0.0)
        at_least("orthogonality_rank", self.orthogonality_rank, 1)


@dataclass(frozen=True)
class StagesConfig:
    stage1_steps: int = 1000  # seed: stage1_steps=1000
    stage2_aux_factor: float = 0.1  # not in the seed (get_stage_weights is undefined there)
    curriculum: bool = False  # seed 6, its Phase 3: not in its combined loss
    # seed 6: positions under the 0.3 attention-norm quantile before step 500, under 0.7 before
    # step 1000, then all
    curriculum_step1: int = 500
    curriculum_quantile1: float = 0.3
    curriculum_step2: int = 1000
    curriculum_quantile2: float = 0.7
    adaptive: bool = False  # seed 2: "can be added incrementally with a flag"
    adaptive_alpha: float = 0.9  # seed 2: EMA factor 0.9
    adaptive_every: int = 1  # optimiser steps between gradient-norm measurements

    def __post_init__(self):
        at_least("stage1_steps", self.stage1_steps, 0)
        within("stage2_aux_factor", self.stage2_aux_factor, 0.0, 1.0)
        at_least("curriculum_step1", self.curriculum_step1, 0)
        at_least("curriculum_step2", self.curriculum_step2, self.curriculum_step1)
        within("curriculum_quantile1", self.curriculum_quantile1, 0.01, 1.0)
        within("curriculum_quantile2", self.curriculum_quantile2, 0.01, 1.0)
        within("adaptive_alpha", self.adaptive_alpha, 0.0, 0.9999)
        at_least("adaptive_every", self.adaptive_every, 1)


@dataclass(frozen=True)
class HealthConfig:
    grace_epochs: int = 1
    min_scalar_var: float = 1e-8  # seed "Monitoring": the modulation scalar must not collapse
    # seed "Monitoring": "v_a/v_b norm evolution - Should be stable, not exploding or vanishing"
    # (mean norm per position; the thresholds are not in the seed)
    max_vector_norm: float = 1e3
    min_vector_norm: float = 1e-4
    # the modulated layer this many times further from the teacher than the unmodulated one: the
    # modulation is doing harm (not in the seed; healthy runs stay near 1, diverged ones in the 1e3s)
    max_fidelity_vs_plain: float = 10.0

    def __post_init__(self):
        at_least("grace_epochs", self.grace_epochs, 0)
        at_least("min_scalar_var", self.min_scalar_var, 0.0)
        above("max_vector_norm", self.max_vector_norm, 0.0)
        within("min_vector_norm", self.min_vector_norm, 0.0, self.max_vector_norm)
        above("max_fidelity_vs_plain", self.max_fidelity_vs_plain, 1.0)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    stages: StagesConfig = field(default_factory=StagesConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, grad_clip=1.0))  # not in the seed
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=16))


# seed "Implementation Priority": each phase adds to the one before
PHASE1 = {"loss": {"use_info_bottleneck": False}, "stages": {"adaptive": True}}  # guidance + adaptive
PHASE2 = merge(PHASE1, {"loss": {"use_info_bottleneck": True, "use_decomposed": True}})
PHASE3 = merge(PHASE2, {"loss": {"use_projection_consistency": True}, "stages": {"curriculum": True}})
PHASE4 = merge(PHASE3, {"loss": {"use_orthogonality": True}})
PRESETS = {
    "uniform": {"loss": {"weights": {name: 1.0 for name in TERMS}}},  # every term at weight 1
    "adaptive": {"stages": {"adaptive": True}},
    "all_terms": {"loss": {"use_decomposed": True, "use_projection_consistency": True, "use_orthogonality": True}},
    "phase1": PHASE1, "phase2": PHASE2, "phase3": PHASE3, "phase4": PHASE4,
}

SMOKE = {"data": {"num_train": 64, "num_val": 16, "seq_len": 16}, "train": {"epochs": 2, "batch_size": 8},
         "model": {"d_model": 32, "heads": 2, "d_ffn": 64, "np_rank": 4},
         "stages": {"stage1_steps": 6, "curriculum_step1": 2, "curriculum_step2": 4}}


def vocab_size(cfg) -> int:
    from losstune.data.npt import BYTE_VOCAB

    return BYTE_VOCAB if cfg.data.path else cfg.data.vocab


def load_arrays(cfg):
    """(train sequences, val sequences), int64 [N, seq_len]."""
    from losstune.data.npt import synthetic_tokens, text_tokens

    d = cfg.data
    if not d.path:
        return (synthetic_tokens(d.num_train, d.seq_len, d.vocab, d.seed, d.branching),
                synthetic_tokens(d.num_val, d.seq_len, d.vocab, d.seed + 1, d.branching))
    train = text_tokens(d.path, d.seq_len)
    if d.val_path:
        return train, text_tokens(d.val_path, d.seq_len)
    return hold_out((train,), d.val_fraction, d.path, "sequences")


def refuse_checkpoint_dir(cfg) -> None:
    if cfg.model.checkpoint_dir:
        raise NotImplementedError(
            "model.checkpoint_dir: loading a layer from a Hugging Face checkpoint needs the optional "
            "`transformers` package and a weight mapping that is not implemented yet")


def check_data(cfg) -> int:
    refuse_checkpoint_dir(cfg)
    return len(load_arrays(cfg)[0])


def enabled_terms(cfg) -> list[str]:
    loss = cfg.loss
    flags = {"info_bottleneck": loss.use_info_bottleneck, "decomposed": loss.use_decomposed,
             "projection_consistency": loss.use_projection_consistency, "orthogonality": loss.use_orthogonality}
    return [name for name in TERMS + OPTIONAL_TERMS if flags.get(name, True)]


def build(cfg) -> Parts:
    from losstune.models.npt import NPTModel, NPTTraining

    refuse_checkpoint_dir(cfg)
    train, val = load_arrays(cfg)
    m = cfg.model
    model = NPTModel(vocab_size(cfg), m.d_model, m.heads, m.d_ffn, m.np_rank, m.prefix_layers, m.train_mlp,
                     m.rope_theta, m.teacher_seed)
    return Parts(NPTTraining(model, len(enabled_terms(cfg))), TensorDataset(torch.from_numpy(train)),
                 TensorDataset(torch.from_numpy(val)), {})


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
    from losstune.losses import npt as L

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
    from losstune.losses.npt import balanced_weights, gradient_norms

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
    from losstune.losses.npt import modulation_scalar

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
