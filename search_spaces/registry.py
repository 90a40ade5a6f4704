"""The family registry: family name -> its trainable module (trainables/families/) and its
search-space module (here), loaded and checked against the contract (trainables/family_api.py)
once per process. It lives beside the spaces: the trainables know nothing of search.
"""

from __future__ import annotations

import functools
import importlib

from losstune.trainables.config import ConfigError
from losstune.trainables.family_api import Family, resolve

FAMILIES = {
    "hdr_patch": ("losstune.trainables.families.hdr_patch", "losstune.search_spaces.hdr_patch"),
    "latent_conditioner": ("losstune.trainables.families.latent_conditioner", "losstune.search_spaces.latent_conditioner"),
    "lgt": ("losstune.trainables.families.lgt", "losstune.search_spaces.lgt"),
    "medgen_compression": ("losstune.trainables.families.medgen_compression", "losstune.search_spaces.medgen_compression"),
    "medgen_diffusion": ("losstune.trainables.families.medgen_diffusion", "losstune.search_spaces.medgen_diffusion"),
    "npt": ("losstune.trainables.families.npt", "losstune.search_spaces.npt"),
}


def load_family(name: str) -> Family:
    """The registered family `name`, resolved; ConfigError for an unknown name."""
    if name not in FAMILIES:
        raise ConfigError("family", f"is unknown: {name!r} (known: {', '.join(sorted(FAMILIES))})")
    return _resolved(name, *FAMILIES[name])


@functools.cache
def _resolved(name: str, trainable: str, spaces: str) -> Family:
    return resolve(name, importlib.import_module(trainable), importlib.import_module(spaces))
