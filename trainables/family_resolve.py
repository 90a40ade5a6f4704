"""`resolve`: a family's modules checked once against the contract (trainables/family_api.py) and
made into a Family, the optional hooks a module leaves out filled in with the defaults below (its
loss weights from cfg.loss.weights, the weighted terms summed, one AdamW over every trainable
parameter, nothing per epoch or step, validation means as they are, no model metrics, the one
OBJECTIVE, the config trained as given). The registry (trainables/registry.py) calls it."""

from __future__ import annotations

from dataclasses import asdict
from types import ModuleType

from losstune.trainables.config import get_path
from losstune.trainables.family_api import Family, FamilyError, Objective, OptimizerGroup, adamw


def weights_from_config(cfg) -> dict:
    return asdict(cfg.loss.weights)


def sum_of_terms(model, weighted: dict, cfg) -> tuple:
    return sum(weighted.values()), {}


def one_adamw(model, cfg) -> list[OptimizerGroup]:
    return [OptimizerGroup("model", adamw([p for p in model.parameters() if p.requires_grad], cfg.optim))]


def nothing_per_epoch(model, epoch: int, cfg) -> None:
    return None


def nothing_per_step(model, step: int, cfg) -> None:
    return None


def means_as_they_are(means: dict, cfg) -> dict:
    return means


def config_as_given(cfg):
    return cfg


def no_model_metrics(model, cfg, extras: dict, epoch: int) -> dict:
    return {}


def the_family_objective(cfg) -> None:
    return None  # Family.objective_of: OBJECTIVE


REQUIRED = {"Config": "config_class", "PRESETS": "presets", "SMOKE": "smoke", "OBJECTIVE": "objective",
            "check_data": "check_data", "build": "build", "loss_terms": "loss_terms",
            "val_metrics": "val_metrics", "stop_reason": "stop_reason"}


OPTIONAL = {"OBJECTIVES": ("objectives", ()), "WATCHED_VAL_METRICS": ("watched_val_metrics", ()),
            "TAGS": ("tags", {}), "TERM_SWITCHES": ("term_switches", {}),
            "term_weights": ("term_weights", weights_from_config), "combine": ("combine", sum_of_terms),
            "optimizer_groups": ("optimizer_groups", one_adamw),
            "on_epoch_start": ("on_epoch_start", nothing_per_epoch),
            "on_step_start": ("on_step_start", nothing_per_step),
            "summarise_val": ("summarise_val", means_as_they_are), "model_metrics": ("model_metrics", no_model_metrics),
            "objective_for": ("objective_for", the_family_objective),
            "trained_config": ("trained_config", config_as_given)}


def resolve(name: str, module: ModuleType, spaces: ModuleType) -> Family:
    """The family `name` from its two modules; FamilyError naming the first missing or wrong name."""
    values = {"name": name}
    for attribute, field in REQUIRED.items():
        if not hasattr(module, attribute):
            raise FamilyError(f"{module.__name__}: family {name!r} lacks {attribute} (trainables/family_api.py)")
        values[field] = getattr(module, attribute)
    for attribute, (field, default) in OPTIONAL.items():
        values[field] = getattr(module, attribute, default)
    for attribute in ("SPACES", "DEFAULT_SPACE"):
        if not hasattr(spaces, attribute):
            raise FamilyError(f"{spaces.__name__}: family {name!r} lacks {attribute} (trainables/family_api.py)")
    values.update(spaces=spaces.SPACES, default_space=spaces.DEFAULT_SPACE,
                  space_presets=getattr(spaces, "SPACE_PRESETS", {}))
    family = Family(**values)
    check_shape(family, module)
    return family


def check_shape(family: Family, module: ModuleType) -> None:
    """What can be checked without building anything: the objective's type, the default space
    among the spaces, where the loss weights come from, and the term switches naming real keys.
    (That every computed term has a weight needs a batch: the loop's weighted_loss checks it.)"""
    where = f"{module.__name__}: family {family.name!r}"
    config = family.config_class()
    for objective in (family.objective, family.objective_of(config)):
        if not isinstance(objective, Objective) or objective.mode not in ("min", "max"):
            raise FamilyError(f"{where}: OBJECTIVE (and objective_for) must be an Objective(metric, 'min' or 'max')")
    if family.default_space not in family.spaces:
        raise FamilyError(f"{where}: DEFAULT_SPACE {family.default_space!r} is not one of SPACES")
    for space, preset in family.space_presets.items():
        if space not in family.spaces or preset not in family.presets:
            raise FamilyError(f"{where}: SPACE_PRESETS names {space!r} -> {preset!r}, not a space and a preset")
    if family.term_weights is weights_from_config and not hasattr(getattr(config, "loss", None), "weights"):
        raise FamilyError(f"{where}: Config has no loss.weights section (one weight per loss term) "
                          "and the module no term_weights(cfg)")
    for weight, switch in family.term_switches.items():
        for key in (weight, switch):
            try:
                get_path(config, key)
            except KeyError:
                raise FamilyError(f"{where}: TERM_SWITCHES pairs {weight} with {switch}; Config lacks {key}") from None
    for metric in family.watched_val_metrics:
        if "/" in metric:
            raise FamilyError(f"{where}: WATCHED_VAL_METRICS names {metric!r}; give it without val/")
