"""The family registry: family name -> its trainable module and search-space module.

A family module (trainables/<family>.py) provides, as plain module attributes:
  Config                frozen dataclass of sections; defaults are the seed's documented values
  PRESETS               named nested override dicts (e.g. a seed's recommended fix)
  SMOKE                 overrides that make a run tiny (--smoke-test)
  OBJECTIVE             the metric a sweep ranks by, independent of the tuned loss weights
  OBJECTIVES            (optional) two or more metrics a sweep can trade off: multi-objective Optuna,
                        and the results mark the Pareto front; OBJECTIVE is then their scalar summary
  HEALTH_FROM_VAL       validation metrics also reported as health/<name>
  check_data(cfg)       read the configured data once and raise DataError if it is bad; returns
                        the number of training samples, or None where only a trial can count them
  build(cfg)            -> Parts(model, train_set, val_set, extras)
  loss_terms(model, batch, cfg)           -> ({term: unweighted scalar}, {health stat: scalar tensor})
  val_metrics(model, batch, cfg, extras)  -> {metric: per-sample tensor [B]}
  stop_reason(metrics, cfg)               -> "" or why the trial is clearly broken
  train_loop_per_worker(config)           what TorchTrainer runs on every worker
and, only where a family needs them:
  term_weights(cfg)                       -> {term: weight}; default: cfg.loss.weights, one per term
  combine(model, weighted_terms, cfg)     -> (total loss, {health stat: tensor}); default: the sum
  aux_optimizer(model, cfg)               -> an optimiser of its own for some parameters (e.g.
                                             learned loss weights), unscheduled and unclipped
  on_epoch_start(model, epoch, cfg)       updates epoch-dependent state (e.g. a curriculum) on
                                          the unwrapped model before each epoch
  on_step_start(model, step, cfg)         the same before each optimiser step, `step` the steps
                                          done so far (the loop counts them: with SAM, loss_terms
                                          runs twice a step)
  summarise_val(means, cfg)               -> the validation means with what is derived from them
                                             (e.g. pixel-weighted ratios of per-sample sums)
  TAGS                                    {loop metric name: the seed's name} for what is reported
  TERM_SWITCHES                           {loss weight key: the boolean key without which its term
                                           is not computed}; a sweep that tunes the weight of a
                                           term that is off says so
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Mapping

from losstune.trainables.config import ConfigError, apply_overrides

FAMILIES = {
    "hdr_patch": ("losstune.trainables.hdr_patch", "losstune.search_spaces.hdr_patch"),
    "latent_conditioner": ("losstune.trainables.latent_conditioner", "losstune.search_spaces.latent_conditioner"),
    "lgt": ("losstune.trainables.lgt", "losstune.search_spaces.lgt"),
    "medgen_diffusion": ("losstune.trainables.medgen_diffusion", "losstune.search_spaces.medgen_diffusion"),
    "npt": ("losstune.trainables.npt", "losstune.search_spaces.npt"),
}


@dataclass(frozen=True)
class Objective:
    metric: str
    mode: str  # "min" or "max"


# What Ray Train ranks a run's checkpoints by (trainables.driver.keep_checkpoints): the epoch's
# objective where it validated that epoch's own weights, NaN where it carries an earlier validation.
CHECKPOINT_SCORE = "checkpoint_score"


@dataclass(frozen=True)
class Parts:
    model: Any
    train_set: Any
    val_set: Any
    extras: dict


def own_name(family: ModuleType, name: str) -> str:
    """The loop's own name (val/mse) of a metric a family reports under its seed's tag name
    (Loss/MSE_val); other names are their own."""
    return {tag: own for own, tag in getattr(family, "TAGS", {}).items()}.get(name, name)


def check_batches_fit(train_samples: int | None, batch_sizes: Mapping[str, int]) -> None:
    """Every batch size a run may use ({where it comes from: size}) fills at least one batch of
    the training set (the loader drops a partial last batch), checked before Ray starts."""
    for source, size in batch_sizes.items():
        if train_samples is not None and size > train_samples:
            raise ConfigError("train.batch_size", f"{size} ({source}) is larger than the training set "
                                                  f"({train_samples} samples)")


def family_module(name: str) -> ModuleType:
    if name not in FAMILIES:
        raise ConfigError("family", f"is unknown: {name!r} (known: {', '.join(sorted(FAMILIES))})")
    return importlib.import_module(FAMILIES[name][0])


def spaces_module(name: str) -> ModuleType:
    """search_spaces/<family>.py: SPACES (name -> space) and DEFAULT_SPACE."""
    family_module(name)  # the same error for an unknown family
    return importlib.import_module(FAMILIES[name][1])


def spaces_of(name: str) -> dict:
    return spaces_module(name).SPACES


def make_config(family: ModuleType, overrides: Mapping[str, Any] | None = None, preset: str = ""):
    """The family's documented default, then a named preset, then the overrides."""
    config = family.Config()
    if preset:
        if preset not in family.PRESETS:
            raise ConfigError("preset", f"is unknown: {preset!r} (known: {', '.join(sorted(family.PRESETS))})")
        config = apply_overrides(config, family.PRESETS[preset])
    return apply_overrides(config, overrides or {})


def hold_out(arrays: tuple, val_fraction: float, path: str, items: str) -> tuple:
    """(train arrays..., validation arrays...): the last `val_fraction` of each array held out,
    for data given as one file or folder (`data.path`) without a `data.val_path`."""
    count = len(arrays[0])
    cut = count - max(1, int(round(val_fraction * count)))
    if cut < 1:
        raise ConfigError("data.path", f"{path}: {count} {items} are too few to hold some out")
    return (*(a[:cut] for a in arrays), *(a[cut:] for a in arrays))
