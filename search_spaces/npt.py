"""npt search spaces (seed 003). Each range contains the documented default, which a sweep always
runs first."""

from __future__ import annotations

from ray import tune

from losstune.search_spaces import suggest_from

WEIGHTS_RANGES = {  # log-uniform around the seed's weights, a decade or more each way
    "direct_mlp": (1.0, 100.0),  # 10
    "attention_encoding": (0.1, 50.0),  # 5
    "fidelity": (0.1, 10.0),  # 1
    "regularization": (1e-4, 1.0),  # 0.01
    "modulation_guidance": (0.1, 20.0),  # 2
    "info_bottleneck": (0.01, 5.0),  # 0.5
}
OPTIONAL = {"use_decomposed": ("decomposed", (0.1, 10.0)),  # 1 (not in the seed)
            "use_projection_consistency": ("projection_consistency", (0.1, 10.0)),  # 1 (not in the seed)
            "use_orthogonality": ("orthogonality", (1e-4, 1.0))}  # seed 0.01


def weights(trial) -> None:
    """All six weights; each optional term on or off, its weight tuned only when on."""
    for name, (low, high) in WEIGHTS_RANGES.items():
        trial.suggest_float(f"loss/weights/{name}", low, high, log=True)
    for flag, (name, (low, high)) in OPTIONAL.items():
        if trial.suggest_categorical(f"loss/{flag}", [False, True]):
            trial.suggest_float(f"loss/weights/{name}", low, high, log=True)


def stages(trial) -> None:
    """Stage length and stage-2 factor, curriculum on/off with its steps and quantiles, adaptive
    weighting on/off with its EMA factor."""
    trial.suggest_int("stages/stage1_steps", 0, 4000)  # seed 1000
    trial.suggest_float("stages/stage2_aux_factor", 0.0, 1.0)  # 0.1
    if trial.suggest_categorical("stages/curriculum", [False, True]):
        # the second boundary's range starts at the first, so they always increase
        first = trial.suggest_int("stages/curriculum_step1", 0, 2000)  # seed 500
        trial.suggest_int("stages/curriculum_step2", first, first + 2000)  # seed 1000
        trial.suggest_float("stages/curriculum_quantile1", 0.1, 0.9)  # seed 0.3
        trial.suggest_float("stages/curriculum_quantile2", 0.1, 1.0)  # seed 0.7
    if trial.suggest_categorical("stages/adaptive", [False, True]):
        trial.suggest_float("stages/adaptive_alpha", 0.5, 0.99)  # seed 0.9


SCHEDULE = {
    "optim": {"lr": tune.loguniform(1e-4, 1e-2), "grad_clip": tune.loguniform(0.1, 10.0)},  # 1e-3, 1.0
    "schedule": {"warmup_frac": tune.uniform(0.0, 0.2), "eta_min_factor": tune.uniform(0.0, 0.1)},  # 0.05, 0
}


def everything(trial) -> None:
    weights(trial)
    stages(trial)
    suggest_from(trial, SCHEDULE)


SPACES = {"weights": weights, "stages": stages, "schedule": SCHEDULE, "all": everything}
DEFAULT_SPACE = "weights"
