"""Frozen dataclass configs: overrides from nested dicts, validation with dotted field paths.

Every family's Config is a frozen dataclass of sections. Tune, presets, `--set` flags and
`best_config.json` all speak the same nested dict; `apply_overrides` lays such a dict over a
config, rejecting unknown keys and wrongly typed values, and each section's `__post_init__`
rejects out-of-range values. Errors name the dotted path: `loss.weights.range must be >= 0, got -1`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from collections.abc import Mapping
from typing import Any, Literal
import inspect
import re


class ConfigError(ValueError):
    """A bad config value; `path` is the dotted field name it concerns."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path} {message}" if path else message)

    def __reduce__(self):  # rebuilt from both fields, so that it crosses Ray (pickle) intact
        return ConfigError, (self.path, self.message)

    def under(self, prefix: str) -> "ConfigError":
        return ConfigError(f"{prefix}.{self.path}" if self.path else prefix, self.message)


# --- range checks used by the sections' __post_init__ ------------------------------------------

def finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ConfigError(name, f"must be a finite number, got {value}")


def at_least(name: str, value: float, low: float) -> None:
    finite(name, value)
    if not value >= low:
        raise ConfigError(name, f"must be >= {low}, got {value}")


def above(name: str, value: float, low: float) -> None:
    finite(name, value)
    if not value > low:
        raise ConfigError(name, f"must be > {low}, got {value}")


def within(name: str, value: float, low: float, high: float) -> None:
    finite(name, value)
    if not low <= value <= high:
        raise ConfigError(name, f"must be in [{low}, {high}], got {value}")


# --- nested dict <-> dataclass -----------------------------------------------------------------

def apply_overrides(config: Any, overrides: Mapping[str, Any], path: str = "") -> Any:
    """Return `config` with the values of the nested dict `overrides` laid over it."""
    if not isinstance(overrides, Mapping):
        raise ConfigError(path, f"must be a mapping of keys, got {type(overrides).__name__}")
    hints = typing.get_type_hints(type(config))
    names = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for key, value in overrides.items():
        field_path = f"{path}.{key}" if path else str(key)
        if key not in names:
            raise ConfigError(field_path, f"is not a config key (known here: {', '.join(sorted(names))})")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            changes[key] = apply_overrides(current, value, field_path)
        else:
            changes[key] = _coerce(value, hints[key], field_path)
    try:
        return dataclasses.replace(config, **changes)
    except ConfigError as err:
        raise err.under(path) if path else err


def to_dict(config: Any) -> dict:
    """The nested plain dict of a config (what best_config.json holds)."""
    return dataclasses.asdict(config)


def get_path(config: Any, dotted: str) -> Any:
    """The value at a dotted (or '/'-joined) path; KeyError if it names no field."""
    value = config
    for part in dotted.replace("/", ".").split("."):
        if not dataclasses.is_dataclass(value) or part not in {f.name for f in dataclasses.fields(value)}:
            raise KeyError(dotted)
        value = getattr(value, part)
    return value


def flatten(nested: Mapping[str, Any], sep: str = "/") -> dict:
    """{'a': {'b': 1}} -> {'a/b': 1}. Config keys take two forms: nested (what a config is built
    from) and flat, joined by "/" (Optuna's parameter names in Tune, the results' columns) or by
    "." (--set, error messages); this pair converts between them."""
    flat = {}
    for key, value in nested.items():
        if isinstance(value, Mapping):
            flat.update({f"{key}{sep}{inner}": leaf for inner, leaf in flatten(value, sep).items()})
        else:
            flat[key] = value
    return flat


def unflatten(flat: Mapping[str, Any], sep: str = "/") -> dict:
    """{'a/b': 1} -> {'a': {'b': 1}}: the inverse of flatten."""
    nested: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(sep)
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def merge(base: Mapping, overrides: Mapping) -> dict:
    """Deep-merge two nested dicts; values of `overrides` win."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _coerce(value: Any, hint: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(path, f"must be one of {list(typing.get_args(hint))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"must be a list, got {value!r}")
        item_type = typing.get_args(hint)[0]
        return tuple(_coerce(v, item_type, f"{path}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        integral = isinstance(value, numbers.Integral) or isinstance(value, float) and value.is_integer()
        if isinstance(value, bool) or not integral:
            raise ConfigError(path, f"must be an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(path, f"must be a number, got {value!r}")
        finite(path, value)  # JSON's Infinity, NaN and 1e999 parse; no field means them
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"{path}: unsupported config field type {hint!r}")


def documented_fields(config: Any, path: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, value, the note beside its default in the source: the seed section it comes
    from) for every leaf field of a config, in declaration order."""
    rows = []
    notes = field_notes(type(config))
    for field in dataclasses.fields(config):
        value, key = getattr(config, field.name), f"{path}{field.name}"
        if dataclasses.is_dataclass(value):
            rows += documented_fields(value, key + ".")
        else:
            rows.append((key, value, notes.get(field.name, "")))
    return rows


def field_notes(cls: type) -> dict[str, str]:
    """{field: its comment}: the comment after the default, else the comment lines just above."""
    notes, above = {}, []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        match = re.match(r"(\w+)\s*:[^#]*?=[^#]*(?:#\s*(.*))?$", stripped)
        if match and match.group(1) not in notes:
            notes[match.group(1)] = match.group(2) or " ".join(above)
        above = []
    return notes
