"""hdr_patch search spaces (seed 004). Each range contains the documented default, which a
sweep always runs first."""

from __future__ import annotations

from ray import tune

from losstune.search_spaces import suggest_from


def caps(trial) -> None:
    """Mode A (a fixed cap, or in its place the seed's learnable scale, 6.2, or its input-conditioned
    scaler, 6.3) vs Mode B (range-proportional cap), the output normalisation before tanh (5.2),
    and the optional safety clamp: the seed's whole question.

    Every searched value is a factor of a cap (Mode A's bound is alpha x abs_max, Mode B's
    log_delta_scale x the patch's log range), so each is sampled log-uniformly: a trial per factor
    of the cap, not per unit. On a uniform prior, log_delta_scale 0.3-0.6, where the 32-trial
    random searches of benchmarks/search_efficiency.py found their best, is a quarter of the range;
    log-uniform, 43%. The range holds the best value at that benchmark's five training seeds
    (0.29-0.48; at 0.29 and 0.30 seed 3 ties, and 0.2 is worse at all five: benchmarks/history.md).
    The seed's rejected proposals, a batch-averaged "dynamic cap" and a KL term on residuals
    (sections 2-3), are not offered.
    """
    mode = trial.suggest_categorical("caps/mode", ["A", "B"])
    if mode == "A":
        mode_a_bound(trial)
    else:
        trial.suggest_float("caps/log_delta_scale", 0.3, 1.5, log=True)  # seed 0.9
    trial.suggest_categorical("model/output_norm", [False, True])  # seed 5.2; off in the current setting
    if trial.suggest_categorical("caps/clamp_enabled", [False, True]):
        trial.suggest_float("caps/clamp_value", 3.0, 12.0, log=True)  # seed 8.0


def mode_a_bound(trial) -> None:
    """What bounds Mode A's residual: the fixed cap alpha x abs_max, the learnable scale (one, or
    one per RGB channel), or the input-conditioned scaler clamped to the seed's [2, 10]."""
    if trial.suggest_categorical("model/learnable_scale", [False, True]):
        trial.suggest_float("model/scale_init", 2.0, 10.0, log=True)  # seed 6.2 init 6.0, expected 4-8
        trial.suggest_categorical("model/scale_per_channel", [False, True])  # seed 5.1: "can extend to 3"
    elif not trial.suggest_categorical("model/adaptive_scaler", [False, True]):
        trial.suggest_float("caps/abs_max", 2.0, 20.0, log=True)  # current 16, seed's fix 6
        trial.suggest_float("caps/alpha", 0.5, 1.5, log=True)  # current 1.2, seed's fix 1.0


WEIGHTS = {
    "loss": {
        "log_supervision_type": tune.choice(["l1", "huber"]),
        "huber_delta": tune.loguniform(0.05, 1.0),  # seed 0.2
        "weights": {
            "log_supervision": tune.uniform(0.25, 4.0),  # seed 1.0 -> 2.0
            "sparsity": tune.uniform(0.0, 0.5),  # seed suggests 0.1
            "range": tune.uniform(0.0, 2.0),  # seed suggests 1.0
            "histogram": tune.uniform(0.0, 1.0),  # seed suggests 0.5
            "moment": tune.uniform(0.0, 1.0),
        },
    }
}

SCHEDULE = {
    "optim": {
        "lr": tune.loguniform(1e-4, 1e-2),
        "weight_decay": tune.loguniform(1e-6, 1e-2),
        "grad_clip": tune.uniform(0.1, 10.0),
    },
    "schedule": {
        "kind": tune.choice(["cosine", "constant"]),
        "warmup_frac": tune.uniform(0.0, 0.2),
        "eta_min_factor": tune.uniform(0.0, 0.1),
    },
}


def everything(trial) -> None:
    caps(trial)
    suggest_from(trial, WEIGHTS)
    suggest_from(trial, SCHEDULE)


SPACES = {"caps": caps, "weights": WEIGHTS, "schedule": SCHEDULE, "all": everything}
DEFAULT_SPACE = "caps"
