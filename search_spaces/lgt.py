"""lgt search spaces (seed 002). Each range contains the documented default, which a sweep always
runs first.

`weights` tunes the style/content trade-off as a log-ratio and a scale (the Pareto front of the
two objectives moves along the ratio), and the optional regularisers: each on or off, its weight
tuned only when on.
"""

from __future__ import annotations

from ray import tune

from losstune.search_spaces import suggest_from

REGULARISERS = {"use_velocity_reg": ("velocity", (1e-4, 1.0)),  # seed 7.1
                "use_divergence_reg": ("divergence", (1e-4, 1.0))}  # seed 7.3


def weights(trial) -> None:
    trial.suggest_float("loss/weights/log_style_to_content", -3.0, 3.0)  # 0: w_style = w_content
    trial.suggest_float("loss/weights/energy_scale", 0.5, 8.0, log=True)  # default 2 (1 + 1)
    for flag, (weight, (low, high)) in REGULARISERS.items():
        if trial.suggest_categorical(f"loss/{flag}", [False, True]):
            trial.suggest_float(f"loss/weights/{weight}", low, high, log=True)  # default 0.01


CAPS = {
    # the seed's main change (240 -> 48), which also sets how many latents the SWD's patch sample
    # is drawn from; 240 needs at least that many training latents
    "train": {"batch_size": tune.choice([16, 32, 48, 96, 240])},
    "loss": {
        "max_samples": tune.lograndint(1024, 16385),  # seed 4096 -> 8192
        "max_spatial_samples": tune.lograndint(64, 1025),  # seed 256 (of 1024 positions at 32x32)
        "projections": tune.lograndint(16, 257),  # 64
        "stratified": tune.choice([False, True]),  # seed 7.4 (future): per-element SWD
    },
    "flow": {"ode_steps": tune.randint(1, 9)},  # 4
}

CFG = {
    "flow": {
        "label_drop_prob": tune.uniform(0.0, 0.3),  # seed 0.1 -> 0.15
        "cfg_scale": tune.uniform(1.0, 4.0),  # seed 2.0; "3.0 if too weak, 1.5 if over-stylised"
    }
}

SCHEDULE = {
    "optim": {
        "lr": tune.loguniform(1e-5, 1e-3),  # 1e-4
        "grad_clip": tune.loguniform(0.1, 10.0),  # seed 1.0
    },
    "schedule": {
        "warmup_frac": tune.uniform(0.0, 0.2),  # 0.05
        "eta_min_factor": tune.uniform(0.0, 0.1),  # 0
    },
}


def everything(trial) -> None:
    weights(trial)
    for space in (CAPS, CFG, SCHEDULE):
        suggest_from(trial, space)


SPACES = {"weights": weights, "caps": CAPS, "cfg": CFG, "schedule": SCHEDULE, "all": everything}
DEFAULT_SPACE = "weights"
