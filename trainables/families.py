"""The family registry: family name -> its trainable module and search-space module, loaded and
checked against the contract (trainables/family_api.py) once per process.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, Mapping

from losstune.trainables.config import ConfigError, apply_overrides
from losstune.trainables.family_api import Family, resolve

FAMILIES = {
    "hdr_patch": ("losstune.trainables.hdr_patch", "losstune.search_spaces.hdr_patch"),
    "latent_conditioner": ("losstune.trainables.latent_conditioner", "losstune.search_spaces.latent_conditioner"),
    "lgt": ("losstune.trainables.lgt", "losstune.search_spaces.lgt"),
    "medgen_compression": ("losstune.trainables.medgen_compression", "losstune.search_spaces.medgen_compression"),
    "medgen_diffusion": ("losstune.trainables.medgen_diffusion", "losstune.search_spaces.medgen_diffusion"),
    "npt": ("losstune.trainables.npt", "losstune.search_spaces.npt"),
}


def check_batches_fit(train_samples: int | None, batch_sizes: Mapping[str, int]) -> None:
    """Every batch size a run may use ({where it comes from: size}) fills at least one batch of
    the training set (the loader drops a partial last batch), checked before Ray starts."""
    for source, size in batch_sizes.items():
        if train_samples is not None and size > train_samples:
            raise ConfigError("train.batch_size", f"{size} ({source}) is larger than the training set "
                                                  f"({train_samples} samples)")


def load_family(name: str) -> Family:
    """The registered family `name`, resolved; ConfigError for an unknown name."""
    if name not in FAMILIES:
        raise ConfigError("family", f"is unknown: {name!r} (known: {', '.join(sorted(FAMILIES))})")
    return _resolved(name, *FAMILIES[name])


@functools.cache
def _resolved(name: str, trainable: str, spaces: str) -> Family:
    return resolve(name, importlib.import_module(trainable), importlib.import_module(spaces))


def make_config(family: Family, overrides: Mapping[str, Any] | None = None, preset: str = ""):
    """The family's documented default, then a named preset, then the overrides."""
    config = family.config_class()
    if preset:
        if preset not in family.presets:
            raise ConfigError("preset", f"is unknown: {preset!r} (known: {', '.join(sorted(family.presets))})")
        config = apply_overrides(config, family.presets[preset])
    return apply_overrides(config, overrides or {})
