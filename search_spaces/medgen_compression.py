"""medgen_compression search spaces (seed 001 "Loss Functions / VAE Training", "Learning Rates / VAE").

Each space reads the sweep's config, so that it tunes only what that config trains: the KL weight
of a VAE, the commitment of a VQ-VAE, the adversarial terms where the GAN is on, the perceptual
weight where its local ResNet-50 weights are given, Dice and Boundary in seg_compression mode.
Weights are log-uniform over three decades or more around the seed's values (MONAI's own recipes
range from 0.001 to 1.0 for perceptual); each range holds the documented default, which a sweep
always runs first.
"""

from __future__ import annotations

from losstune.trainables.config import ConfigError


def gan_on(config) -> bool:
    return config.gan.enabled and config.loss.weights.adversarial > 0


def weights(trial, config) -> None:
    prefix = "loss/weights/"
    before = len(trial.params)
    if config.data.mode == "seg_compression":
        trial.suggest_float(prefix + "dice", 0.01, 10.0, log=True)  # 1 (the seed names no weight; BCE stays 1)
        trial.suggest_float(prefix + "boundary", 0.01, 10.0, log=True)  # 1
    elif config.loss.perceptual_weights_path:  # without the network there is no term to weigh
        trial.suggest_float(prefix + "perceptual", 1e-4, 1.0, log=True)  # seed 0.001 (VAE), 0.002 (VQ-VAE)
    if config.model.kind == "vae":
        trial.suggest_float(prefix + "kl", 1e-8, 1e-4, log=True)  # seed 1e-6
    if config.model.kind == "vqvae":
        trial.suggest_float(prefix + "vq", 0.025, 2.5, log=True)  # seed commitment 0.25
    if gan_on(config):
        trial.suggest_float(prefix + "adversarial", 1e-4, 1.0, log=True)  # seed 0.01 (VAE), 0.005 (VQ-VAE)
    if len(trial.params) == before:
        raise ConfigError("--space weights", f"has no loss weight to tune for a {config.model.kind} without "
                                             "perceptual weights (loss.perceptual_weights_path) or a GAN; "
                                             "try --space schedule")


def schedule(trial, config) -> None:
    trial.suggest_float("optim/lr", 1e-5, 1e-3, log=True)  # seed generator 1e-4
    trial.suggest_float("schedule/warmup_epochs", 0.0, max(10.0, config.schedule.warmup_epochs))  # seed 5
    if gan_on(config):
        trial.suggest_float("gan/disc_lr", 5e-5, 5e-3, log=True)  # seed discriminator 5e-4
        adversarial_start(trial, config)


def adversarial_start(trial, config) -> None:
    # up to 20 epochs, never past the run's last epoch (a GAN that never starts is not a GAN setting)
    latest = max(config.gan.start_epoch, min(20, config.train.epochs - 1))
    trial.suggest_int("gan/start_epoch", 0, latest)  # MONAI's 3D recipe: 5 (the seed names none)


def gan(trial, config) -> None:
    if not gan_on(config):
        raise ConfigError("--space gan", "needs the GAN on (gan.enabled=true and loss.weights.adversarial > 0)")
    trial.suggest_float("loss/weights/adversarial", 1e-4, 1.0, log=True)  # seed 0.01 (VAE), 0.005 (VQ-VAE)
    adversarial_start(trial, config)
    trial.suggest_float("gan/disc_lr", 5e-5, 5e-3, log=True)  # seed 5e-4
    trial.suggest_int("gan/disc_layers", 1, 4)  # MONAI's recipes: 3


def everything(trial, config) -> None:
    weights(trial, config)  # with the adversarial weight where the GAN is on
    schedule(trial, config)  # with the discriminator's rate and the adversarial start
    if gan_on(config):
        trial.suggest_int("gan/disc_layers", 1, 4)


def structured_latent(trial, config) -> None:
    """DC-AE 1.5's channel masking (seed "DC-AE 1.5: Structured Latent Space", its claim "6x faster
    convergence" with augmented diffusion) on or off, and where on its least channel count and
    step around the seed's 16 and 4, each pair stepping exactly up to the variant's channels."""
    if config.model.kind != "dcae" or config.model.dcae.pretrained:
        raise ConfigError("--space structured_latent", "is DC-AE 1.5's: set model.kind=dcae (from scratch, a "
                                                       "variant of the seed's table)")
    latent = config.model.dcae.latent_channels
    prefix = "model/dcae/"
    if trial.suggest_categorical(prefix + "structured_latent", [False, True]):  # seed: off unless asked
        trial.suggest_categorical(prefix + "min_channels", [c for c in (8, 16, 32, 64) if c < latent])  # seed 16
        trial.suggest_categorical(prefix + "channel_step", [4, 8])  # seed 4


SPACES = {"weights": weights, "schedule": schedule, "gan": gan, "structured_latent": structured_latent,
          "all": everything}
SPACE_PRESETS = {"structured_latent": "f64"}  # the seed's recommended DC-AE for it (c >= 64)
DEFAULT_SPACE = "weights"
