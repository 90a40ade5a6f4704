"""latent_conditioner search spaces (seed 000). Each range contains the documented default, which a
sweep always runs first.

`weights` tunes every term's weight; the enhancement terms count only where the enhancement is on,
so sweep it on top of a preset that enables them (`--preset large_dataset`) or use `enhancements`,
which turns each one on or off and tunes its weight only when on.
"""

from __future__ import annotations

from ray import tune

from losstune.search_spaces import suggest_from

WEIGHTS = {
    "loss": {
        "weights": {
            "main": tune.loguniform(1.0, 100.0),  # seed 10 (main : hier = 10 : 1)
            "mse": tune.uniform(0.5, 2.0),  # seed 1.0
            "mae": tune.uniform(0.0, 0.5),  # seed 0.1
            "huber": tune.uniform(0.0, 0.25),  # seed 0.05
            "perceptual_main": tune.uniform(0.0, 0.5),  # seed 0.1
            "perceptual_hier": tune.uniform(0.0, 0.5),  # seed 0.05
            "consistency": tune.uniform(0.0, 0.5),  # seed 0.1
            # seed 1e-4 on its batch-summed term (at 256x256, batch 32, about 3e6 at initialisation:
            # 1e-4 makes it 99% of the loss, a decade or two lower a share the latent loss can lead)
            "spectral": tune.loguniform(1e-8, 1e-3),
        }
    }
}

SCHEDULE = {
    "optim": {
        "lr": tune.loguniform(1e-5, 1e-3),  # seed 1e-4
        "weight_decay": tune.loguniform(1e-6, 1e-2),  # seed 1e-4
        "grad_clip": tune.loguniform(0.5, 50.0),  # seed 10.0
    },
    "schedule": {
        "warmup_frac": tune.uniform(0.0, 0.2),  # seed 100 of 10,000 epochs = 0.01
        "eta_min_factor": tune.loguniform(1e-5, 1e-1),  # seed eta_min 1e-8 at lr 1e-4 = 1e-4
    },
}

AUGMENT = {
    "augment": {
        "outline_p": tune.uniform(0.0, 1.0),  # seed 0.5
        "flip_p": tune.uniform(0.0, 0.5),  # seed 0.3
        "max_degrees": tune.uniform(0.0, 15.0),  # seed 5
        "mixup_p": tune.uniform(0.0, 0.2),  # seed 0.02
        "mixup_alpha": tune.uniform(0.1, 1.0),  # seed 0.2
        "noise_p": tune.uniform(0.0, 0.3),  # seed 0.05
        "noise_std": tune.uniform(0.0, 0.05),  # seed 0.01
    }
}


def enhancements(trial) -> None:
    """Each of the seed's enhancements on or off; its weights (WEIGHTS' ranges) tuned only when on;
    adaptive weighting off or the bounded uncertainty weighting. The seed's softmax weighter is
    not sampled: the seed itself shows it collapsing (`--set loss.adaptive=softmax` runs it)."""
    ranges = WEIGHTS["loss"]["weights"]
    for name, weights in (("robust", ("mae", "huber")), ("perceptual", ("perceptual_main", "perceptual_hier")),
                          ("consistency", ("consistency",)), ("spectral", ("spectral",))):
        if trial.suggest_categorical(f"loss/enhancements/{name}", [False, True]):
            suggest_from(trial, {"loss": {"weights": {w: ranges[w] for w in weights}}})
    trial.suggest_categorical("loss/adaptive", ["none", "uncertainty"])


def everything(trial) -> None:
    enhancements(trial)
    trial.suggest_float("loss/weights/main", 1.0, 100.0, log=True)
    suggest_from(trial, SCHEDULE)
    suggest_from(trial, AUGMENT)


SPACES = {"weights": WEIGHTS, "enhancements": enhancements, "schedule": SCHEDULE, "augment": AUGMENT,
          "all": everything}
DEFAULT_SPACE = "weights"
