"""The small runs the loop's tests train, in this process or through a TorchTrainer: each family at
its smoke size with every loss term on, and what a report must hold."""

from losstune.trainables.config import merge
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family

DOCUMENTED = ["epoch", "train/loss", "lr", "grad_norm", "samples_per_s", "peak_mem_mb", "health/nonfinite",
              "health/max_term_share", "health/grad_norm_out_of_range", "stop_reason", "time/epoch_s", "restarts",
              "node"]


# Tiny runs may trip a family's health thresholds (the hdr default overflows early): this test
# is about the plumbing, so those stops are off here and tested in the sweep tests.
LENIENT = {"hdr_patch": {"health": {"max_overflow_frac": 1.0}}}
# Every loss term on, and the adaptive weighter's own optimiser in the checkpoint.
PRESET = {"latent_conditioner": "large_dataset", "lgt": "regularised", "npt": "all_terms",
          "medgen_diffusion": "regularised"}
# The shared loop's optimiser options (SAM's second pass, EMA weights in the checkpoint, the
# plateau scheduler's state), on for one family.
OPTIMISER_OPTIONS = {"medgen_diffusion": {"optim": {"sam_rho": 0.05, "ema_decay": 0.9},
                                          "schedule": {"kind": "plateau"}}}


def smoke_config(family) -> dict:
    module = load_family(family)
    preset = module.presets[PRESET[family]] if family in PRESET else {}
    return merge(merge(merge(preset, module.smoke), LENIENT.get(family, {})), OPTIMISER_OPTIONS.get(family, {}))


def term_names(family, config) -> list[str]:
    """The loss terms a family reports: one per weight its term_weights names (by default, one per
    loss weight of its config)."""
    resolved = load_family(family)
    return list(resolved.term_weights(make_config(resolved, config)))


# Families whose checkpoint holds more than model, optimiser and scheduler (the adaptive weighter's
# optimiser; NPT's step counter and gradient-norm EMA; medgen's EMA weights, plateau state and
# curriculum epoch), and hdr_patch for the plain case: their run loses its worker in epoch 3 and
# must resume from the epoch-2 checkpoint. lgt's state is the plain case, and its run takes a
# minute here, so it trains 2 epochs without the crash.
RESUME_FAMILIES = ["hdr_patch", "latent_conditioner", "npt", "medgen_diffusion", "medgen_compression"]


