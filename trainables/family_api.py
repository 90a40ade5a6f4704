"""The family contract: what a family provides. trainables/family_resolve.py checks a module against
it once and fills in the optional hooks, so that the loop and the jobs call a `Family` and never
probe a module.

A family is two plain modules, registered in trainables/registry.py (the five seed families keep
their Config, PRESETS and SMOKE in trainables/families/<name>_config.py and bind them in <name>.py):

trainables/families/<name>.py provides
  Config                frozen dataclass of sections; defaults are the seed's documented values;
                        a `loss.weights` section with one float per loss term, unless the
                        module has its own term_weights
  PRESETS               named nested override dicts (e.g. a seed's recommended fix)
  SMOKE                 overrides that make a run tiny (--smoke-test)
  OBJECTIVE             the metric a sweep ranks by, independent of the tuned loss weights
  check_data(cfg)       read the configured data once and raise DataError if it is bad; returns
                        the number of training samples, or None where only a trial can count them
  build(cfg)            -> Parts(model, train_set, val_set, extras)
  loss_terms(model, batch, cfg)           -> ({term: unweighted scalar}, {health stat: scalar tensor})
  val_metrics(model, batch, cfg, extras)  -> {metric: per-sample tensor [B]}
  stop_reason(metrics, cfg)               -> "" or why the trial is clearly broken
and, only where it needs them (the defaults: trainables/family_resolve.py):
  objective_for(cfg)    -> the Objective of runs of this config where it is not OBJECTIVE (e.g.
                        Dice in a segmentation mode), else None; Family.objective_of(cfg) reads it
  OBJECTIVES            two or more metrics a sweep can trade off (multi-objective Optuna; the
                        results mark the Pareto front); OBJECTIVE is then their scalar summary
  WATCHED_VAL_METRICS   validation metrics also reported as health/<name> (a stop reads them)
  TAGS                  {loop metric name: the seed's TensorBoard tag}, used where TensorBoard
                        files are written; everywhere else metrics keep the loop's names
  TERM_SWITCHES         {loss weight key: the boolean key without which its term is not
                        computed}; a sweep that tunes the weight of a term that is off says so
  term_weights(cfg)                 -> {term: weight}; default: cfg.loss.weights, one per term
  combine(model, weighted, cfg)     -> (total loss, {health stat: tensor}); default: the sum
  optimizer_groups(model, cfg)      -> [OptimizerGroup]: the optimisers it trains with, each over
                                       its own parameters, minimising the whole loss or named
                                       terms (a GAN's generator and discriminator), scheduled and
                                       clipped or not; default: one AdamW from cfg.optim over
                                       every trainable parameter
  on_epoch_start(model, epoch, cfg) updates epoch-dependent state (e.g. a curriculum)
  on_step_start(model, step, cfg)   the same before each optimiser step (`step`: steps done)
  summarise_val(means, cfg)         -> the validation means with what is derived from them
  model_metrics(model, cfg, extras, epoch) -> {metric: number} of the model as a whole at each
                                       validation, beside the per-sample ones (a generator's
                                       samples against the data); `extras` (build's) may cache
                                       what every validation reuses; default: none
  trained_config(cfg)               -> the config as trained, where the family reads part of it
                                       elsewhere (npt: a checkpoint's layer sizes); default: cfg

search_spaces/<name>.py provides SPACES ({name: define-by-run function, or a ray.tune dict}) and
DEFAULT_SPACE; a function may take the sweep's config as well (`def weights(trial, config)`), to
tune only what that config trains; SPACE_PRESETS (optional, {space: preset}) names the preset a
space applies to where the default config has nothing for it to tune.
"""

from __future__ import annotations

import functools
import inspect
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from losstune.trainables.config import ConfigError, apply_overrides

class FamilyError(TypeError):
    """A family module that does not keep the contract; the message names the module and the name."""


# The smallest difference to the documented default that a verdict counts (--min-effect) where a
# family's objective declares none: 1% of the default's value at each training seed. The one place
# this default is written.
DEFAULT_MIN_EFFECT = "1%"


@dataclass(frozen=True)
class Objective:
    metric: str
    mode: str  # "min" or "max"
    # the smallest difference to the default that matters, for a confirmation's verdict (--min-effect):
    # an absolute value in the metric's units, or a percentage of the default's value
    min_effect: str = DEFAULT_MIN_EFFECT


@dataclass(frozen=True)
class Parts:
    model: Any
    train_set: Any
    val_set: Any
    extras: dict


@dataclass(frozen=True)
class OptimizerGroup:
    """One optimiser of a family's run, over parameters no other group has.

    `terms`: the loss terms whose weighted sum this group minimises; empty, the whole loss as
    `combine` makes it. `scheduled`: the run's learning-rate schedule (cfg.schedule) applies,
    relative to this optimiser's own rate. `clipped`: its gradient norm is capped at
    optim.grad_clip, and SAM, gradient noise and the grad-norm health stats cover it."""

    name: str
    optimizer: Any  # a torch.optim.Optimizer
    terms: tuple[str, ...] = ()
    scheduled: bool = True
    clipped: bool = True


def adamw(params, optim):
    """AdamW over `params` with a config's optim section (rate, weight decay, betas)."""
    # here, not at the top: loads torch only where this runs
    import torch

    return torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay, betas=(optim.beta1, optim.beta2))


@dataclass(frozen=True)
class Family:
    """One family, resolved: every hook present. Picklable (its functions are module-level), so a
    sweep ships it to Tune's trials and Train's workers as it is."""

    name: str
    config_class: type
    presets: Mapping[str, dict]
    smoke: Mapping[str, Any]
    objective: Objective
    objectives: tuple[Objective, ...]  # empty: one objective
    watched_val_metrics: tuple[str, ...]
    tags: Mapping[str, str]
    term_switches: Mapping[str, str]
    spaces: Mapping[str, Callable]
    default_space: str
    check_data: Callable
    build: Callable
    loss_terms: Callable
    val_metrics: Callable
    stop_reason: Callable
    term_weights: Callable
    combine: Callable
    optimizer_groups: Callable
    on_epoch_start: Callable
    on_step_start: Callable
    summarise_val: Callable
    model_metrics: Callable = None  # resolve() always sets it
    objective_for: Callable = None  # resolve() always sets it
    trained_config: Callable = None  # resolve() always sets it
    space_presets: Mapping[str, str] = None  # resolve() always sets it: SPACE_PRESETS, or {}

    def objective_of(self, cfg) -> Objective:
        """What runs of `cfg` are ranked by: the family's objective_for(cfg), else its OBJECTIVE."""
        return self.objective_for(cfg) or self.objective

    def space(self, name: str, config):
        """The search space `name` as a sweep from `config` searches it (`bound`)."""
        return bound(self.spaces[name], config)

    def space_config(self, name: str):
        """The config a space applies to: the default, or the preset SPACE_PRESETS names for it (a
        space of what the default does not train: medgen_compression's `structured_latent`, DC-AE's)."""
        return make_config(self, preset=self.space_presets.get(name, ""))


def bound(space, config):
    """The space as a sweep from `config` searches it: a define-by-run function that declares a
    `config` parameter (`def weights(trial, config)`) gets the sweep's config bound, so that it
    tunes only what that config trains (a VQ-VAE's commitment, not a VAE's KL)."""
    if callable(space) and "config" in inspect.signature(space).parameters:
        return functools.partial(space, config=config)
    return space


def make_config(family: Family, overrides: Mapping[str, Any] | None = None, preset: str = ""):
    """The family's documented default, then a named preset, then the overrides."""
    config = family.config_class()
    if preset:
        if preset not in family.presets:
            raise ConfigError("preset", f"is unknown: {preset!r} (known: {', '.join(sorted(family.presets))})")
        config = apply_overrides(config, family.presets[preset])
    return apply_overrides(config, overrides or {})


def checked_data(family: Family, config) -> int | None:
    """The family's own data check (family.check_data: it reads every file once, before Ray
    starts), after what holds for every family: a held-out `data.val_path` needs the `data.path`
    it is held out from (alone it was ignored, and the embedded synthetic data trained), and must
    exist (a FileNotFoundError traceback before)."""
    data = getattr(config, "data", None)
    val_path = getattr(data, "val_path", "")
    if val_path:
        if not getattr(data, "path", ""):
            raise ConfigError("data.val_path", f"is set ({val_path}) but data.path is not: a held-out set is read beside "
                                          "the training data (set data.path, or leave val_path out)")
        if not os.path.exists(val_path):
            raise ConfigError("data.val_path", f"{val_path}: no such file or folder")
    return family.check_data(config)


def check_batches_fit(train_samples: int | None, batch_sizes: Mapping[str, int]) -> None:
    """Every batch size a run may use ({where it comes from: size}) fills at least one batch of
    the training set (the loader drops a partial last batch), checked before Ray starts."""
    for source, size in batch_sizes.items():
        if train_samples is not None and size > train_samples:
            raise ConfigError("train.batch_size", f"{size} ({source}) is larger than the training set "
                                                  f"({train_samples} samples)")
