"""The npt family's settings: its config sections with the seed's documented defaults,
its presets and its smoke-test sizes (the family's functions: trainables/families/npt.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from losstune.trainables.config import ConfigError, above, at_least, merge, within
from losstune.trainables.engine.loop_config import OptimConfig, ScheduleConfig, TrainConfig


# the seed's six loss terms, and the three optional ones (each with its weight in LossWeights)
TERMS = ("direct_mlp", "attention_encoding", "fidelity", "regularization", "modulation_guidance", "info_bottleneck")
OPTIONAL_TERMS = ("decomposed", "projection_consistency", "orthogonality")


@dataclass(frozen=True)
class DataConfig:
    """The seed trains on a model's hidden states and names no data: these are the platform's."""

    # a UTF-8 text file, read as bytes (vocabulary 256), or with model.checkpoint_dir by the
    # checkpoint's tokenizer; "" = synthetic
    path: str = ""
    val_path: str = ""  # a second text file; "" = the last `val_fraction` of `path`'s sequences
    val_fraction: float = 0.1
    seq_len: int = 64  # with a checkpoint that has a BOS token: BOS + seq_len - 1 text tokens
    # not in the seed: at most this many sequences from each text file, its first (0 = all); a
    # checkpoint's hidden states are held in memory, seq_len x d_model values a sequence
    max_sequences: int = 0
    vocab: int = 64  # synthetic only
    branching: int = 3  # synthetic only: successors per token in the Markov chain
    num_train: int = 2048  # synthetic sequences: 128 steps of 16 per epoch, past both curriculum steps
    num_val: int = 256
    seed: int = 0  # synthetic only; the validation stream uses seed + 1

    def __post_init__(self):
        within("val_fraction", self.val_fraction, 0.01, 0.9)
        at_least("seq_len", self.seq_len, 2)
        at_least("max_sequences", self.max_sequences, 0)
        at_least("vocab", self.vocab, 2)
        within("branching", self.branching, 1, self.vocab)
        at_least("num_train", self.num_train, 1)
        at_least("num_val", self.num_val, 1)


@dataclass(frozen=True)
class ModelConfig:
    """The seed names no sizes; d_model 256 is the issue's measurement size, d_ffn Llama's 8/3 ratio.
    With `checkpoint_dir` the layer is the checkpoint's: its sizes, rotary base and weights replace
    d_model, heads, d_ffn, rope_theta and teacher_seed."""

    d_model: int = 256
    heads: int = 4
    d_ffn: int = 688
    np_rank: int = 32  # the NP component's bottleneck (not in the seed)
    # the NPT layer (the seed trains one layer of a pretrained model and names none); the frozen
    # layers before it make its input hidden states
    layer_index: int = 0
    train_mlp: bool = False  # the MLP weights are the teacher's, frozen unless this is set
    rope_theta: float = 10000.0  # Llama's
    teacher_seed: int = 0  # the random teacher (and embedding) are the same in every trial
    # the seed's pretrained model, not named there: a local Hugging Face folder (config.json,
    # safetensors weights, tokenizer) whose layer `layer_index` is the teacher; its tokenizer
    # reads data.path (data/npt_checkpoint.py); "" = the random teacher
    checkpoint_dir: str = ""

    def __post_init__(self):
        at_least("heads", self.heads, 1)
        if self.d_model % self.heads or (self.d_model // self.heads) % 2:
            raise ConfigError("d_model", f"must split into {self.heads} heads of even size, got {self.d_model}")
        at_least("d_ffn", self.d_ffn, 1)
        at_least("np_rank", self.np_rank, 1)
        at_least("layer_index", self.layer_index, 0)


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

SMOKE = {"data": {"num_train": 64, "num_val": 16, "seq_len": 16, "max_sequences": 80}, "train": {"epochs": 2, "batch_size": 8},
         "model": {"d_model": 32, "heads": 2, "d_ffn": 64, "np_rank": 4},
         "stages": {"stage1_steps": 6, "curriculum_step1": 2, "curriculum_step2": 4}}
