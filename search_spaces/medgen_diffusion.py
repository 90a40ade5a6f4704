"""medgen_diffusion search spaces (seed 001). Each contains the documented default, which a sweep
always runs first. Switches that are off by default are searched as on/off with their parameter
tuned only when on (define-by-run), so "off" stays one clean choice.

`weights_perceptual` adds the perceptual weight to `weights`. It is its own space because the
perceptual network's pretrained weights cannot be downloaded here: it needs
`--set loss.perceptual_weights_path=<local ResNet-50 state dict>` (and torchvision).
"""

from __future__ import annotations


def weights(trial) -> None:
    trial.suggest_categorical("loss/min_snr_gamma", [0.0, 1.0, 2.0, 5.0, 10.0])  # 0 = off (seed baseline)
    feature_noise_and_self_conditioning(trial)


def feature_noise_and_self_conditioning(trial) -> None:
    """Feature perturbation on or off, and self-conditioning only where it is on: the consistency
    term compares two forward passes that differ only by the feature noise, so without it the
    term is exactly 0 and its second pass is compute for nothing."""
    prefix = "regularisation/"
    if trial.suggest_categorical(prefix + "feature_perturbation", [False, True]):
        trial.suggest_float(prefix + "feature_std", 0.01, 0.5, log=True)  # seed 0.1
        if trial.suggest_categorical(prefix + "self_conditioning", [False, True]):
            trial.suggest_float(prefix + "self_conditioning_weight", 0.01, 1.0, log=True)  # seed 0.1
            trial.suggest_float(prefix + "self_conditioning_prob", 0.1, 1.0)  # seed 0.5


def weights_perceptual(trial) -> None:
    weights(trial)
    trial.suggest_categorical("loss/perceptual_weight", [0.0, 1e-4, 1e-3, 1e-2])  # seed 0 (0.001 to enable)


def schedule(trial) -> None:
    trial.suggest_float("optim/lr", 1e-5, 1e-3, log=True)  # seed 1e-4
    trial.suggest_float("schedule/warmup_epochs", 0.0, 10.0)  # seed 5
    kind = trial.suggest_categorical("schedule/kind", ["cosine", "constant", "plateau"])  # seed cosine
    if kind == "cosine":
        trial.suggest_float("schedule/eta_min_factor", 0.0, 0.1)  # seed 1e-6 / 1e-4 = 0.01
    elif kind == "plateau":
        trial.suggest_float("schedule/plateau_factor", 0.1, 0.9)  # 0.5 (not in the seed)
        trial.suggest_int("schedule/plateau_patience", 1, 20)  # 10 (not in the seed)


def regularisation(trial) -> None:
    """Each of the seed's clean regularisers on or off, its parameter around the seed's value, and
    ScoreAug or SDA (never both: seed "Do NOT use SDA and ScoreAug together")."""
    time_and_noise_regularisers(trial)
    feature_noise_and_self_conditioning(trial)
    augmentation(trial)


def augmentation(trial) -> None:
    """ScoreAug ("ScoreAug worked": its rotations and flips always, with omega conditioning; its
    destructive transforms on or off), else SDA around the seed's values, else neither."""
    if trial.suggest_categorical("score_aug/enabled", [False, True]):
        trial.suggest_categorical("score_aug/translation", [False, True])  # seed false
        trial.suggest_categorical("score_aug/cutout", [False, True])  # seed false
    elif trial.suggest_categorical("sda/enabled", [False, True]):
        trial.suggest_float("sda/noise_shift", 0.05, 0.2)  # seed 0.1, "0.05-0.2 typical"
        trial.suggest_float("sda/prob", 0.25, 1.0)  # seed 0.5
        trial.suggest_float("sda/weight", 0.25, 2.0, log=True)  # seed 1.0


def time_and_noise_regularisers(trial) -> None:
    prefix = "regularisation/"
    if trial.suggest_categorical(prefix + "curriculum", [False, True]):
        trial.suggest_int(prefix + "curriculum_warmup_epochs", 1, 100)  # seed 50
    if trial.suggest_categorical(prefix + "timestep_jitter", [False, True]):
        trial.suggest_float(prefix + "jitter_std", 0.01, 0.2, log=True)  # seed 0.05
    if trial.suggest_categorical(prefix + "noise_augmentation", [False, True]):
        trial.suggest_float(prefix + "noise_augmentation_std", 0.01, 0.5, log=True)  # seed 0.1
    if trial.suggest_categorical("optim/grad_noise_sigma", [0.0, 0.003, 0.01, 0.03]) > 0:  # seed 0.01
        trial.suggest_float("optim/grad_noise_decay", 0.3, 1.0)  # seed 0.55


def optimizer(trial) -> None:
    """AdamW, or SAM / ASAM around it (seed "SAM Optimizer": rho 0.05, range 0.01-0.1); EMA."""
    if trial.suggest_categorical("optim/sam_rho", [0.0, 0.01, 0.02, 0.05, 0.1]) > 0:
        trial.suggest_categorical("optim/sam_adaptive", [False, True])
    trial.suggest_categorical("optim/ema_decay", [0.0, 0.99, 0.999, 0.9999])  # seed exp4 "+ EMA"; off


def everything(trial) -> None:
    weights(trial)  # with feature perturbation and self-conditioning
    schedule(trial)
    time_and_noise_regularisers(trial)
    optimizer(trial)


def architecture(trial, config) -> None:
    """The denoiser itself (seed "Model Architectures": UNet, DiT, HDiT, UViT; its claim "DiT showed
    no improvement over UNet"), each transformer at the width where its parameter count is nearest
    the base config's UNet (its Config.width_matching_unet), so the comparison
    is of architectures, not of sizes. The width is an integer range of one value per kind (a
    categorical's choices may not change between trials), recorded with each trial; patch size
    and variant stay the base config's."""
    kind = trial.suggest_categorical("model/kind", ["unet", "dit", "hdit", "uvit"])  # seed: unet
    if kind != "unet":
        width = config.width_matching_unet(kind)
        trial.suggest_int("model/width", width, width)


SPACES = {"weights": weights, "weights_perceptual": weights_perceptual, "schedule": schedule,
          "regularisation": regularisation, "optimizer": optimizer, "architecture": architecture, "all": everything}
DEFAULT_SPACE = "weights"
