"""The family registry: family name -> its trainable module (trainables/families/) and its
search-space module (search_spaces/), loaded and checked against the contract
(trainables/family_api.py) once per process: the way into any family, beside its contract.

Another installed package adds a family with an entry point in the group `losstune.families`: the
name of the family = a module that holds the contract and its SPACES and DEFAULT_SPACE
(docs/adding-a-family.md). The built-in families keep their names.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import warnings

from losstune.trainables.config import ConfigError
from losstune.trainables.family_api import Family
from losstune.trainables.family_resolve import resolve

FAMILIES = {
    "hdr_patch": ("losstune.trainables.families.hdr_patch", "losstune.search_spaces.hdr_patch"),
    "latent_conditioner": ("losstune.trainables.families.latent_conditioner", "losstune.search_spaces.latent_conditioner"),
    "lgt": ("losstune.trainables.families.lgt", "losstune.search_spaces.lgt"),
    "medgen_compression": ("losstune.trainables.families.medgen.compression", "losstune.search_spaces.medgen_compression"),
    "medgen_diffusion": ("losstune.trainables.families.medgen.diffusion", "losstune.search_spaces.medgen_diffusion"),
    "npt": ("losstune.trainables.families.npt", "losstune.search_spaces.npt"),
}


ENTRY_POINT_GROUP = "losstune.families"


def registered() -> dict[str, tuple[str, str]]:
    """Every family this environment has: the built-in ones and those installed packages register."""
    found = dict(FAMILIES)
    for name, value in installed():
        if name in FAMILIES:
            warnings.warn(f"family {name!r} of {value} ignored: a built-in family has that name", stacklevel=2)
            continue
        found[name] = (value, value)
    return found


@functools.cache
def installed() -> tuple[tuple[str, str], ...]:
    """(name, module) of each family installed packages register, read once per process (reading
    every package's entry points takes tens of ms, and each command line's parser asks twice); a
    package installed later is seen by the next process."""
    return tuple((entry.name, entry.value) for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def family_package(name: str) -> dict | None:
    """The installed package a family comes from ({"package", "version"}), for its provenance; None
    for a built-in family (losstune's own commit says what it ran)."""
    if name in FAMILIES:
        return None
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name and entry.dist is not None:
            return {"package": entry.dist.name, "version": entry.dist.version}
    return None


def family_names() -> list[str]:
    return list(registered())


def load_family(name: str) -> Family:
    """The registered family `name`, resolved; ConfigError for an unknown name. A built-in name is
    never an installed package's, so it needs no look at them (installed())."""
    families = FAMILIES if name in FAMILIES else registered()
    if name not in families:
        raise ConfigError("family", f"is unknown: {name!r} (known: {', '.join(sorted(families))})")
    return _resolved(name, *families[name])


@functools.cache
def _resolved(name: str, trainable: str, spaces: str) -> Family:
    return resolve(name, importlib.import_module(trainable), importlib.import_module(spaces))
