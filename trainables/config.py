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
from dataclasses import dataclass
from typing import Any, Literal


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


def check_unet_sizes(model) -> None:
    """The sizes of a MONAI DiffusionModelUNet section (widths, attention, res_blocks,
    norm_groups, head_channels) fit together."""
    if len(model.widths) != len(model.attention) or not model.widths:
        raise ConfigError("attention", f"needs one flag per width ({len(model.widths)}), got {len(model.attention)}")
    if any(w % model.norm_groups for w in model.widths):
        raise ConfigError("widths", f"must all be multiples of norm_groups={model.norm_groups}, got {list(model.widths)}")
    at_least("res_blocks", model.res_blocks, 1)
    at_least("head_channels", model.head_channels, 1)


# --- sections the shared train loop reads ------------------------------------------------------

@dataclass(frozen=True)
class OptimConfig:
    """AdamW, the optimiser of the shared loop, and the optimiser-side tricks it offers every
    family (trainables/optim_tricks.py), all off by default."""

    lr: float = 1e-3
    weight_decay: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    sam_rho: float = 0.0  # SAM's neighbourhood radius; 0 = plain AdamW, > 0 = two passes per step
    sam_adaptive: bool = False  # ASAM: the radius in units of each weight's scale
    grad_noise_sigma: float = 0.0  # gradient noise std at step 0 (after clipping); 0 = off
    grad_noise_decay: float = 0.55  # the std decays as sigma / (1 + step)^decay
    ema_decay: float = 0.0  # EMA of the weights for validation and checkpoints; 0 = off

    def __post_init__(self):
        above("lr", self.lr, 0.0)
        at_least("weight_decay", self.weight_decay, 0.0)
        within("beta1", self.beta1, 0.0, 0.999999)
        within("beta2", self.beta2, 0.0, 0.999999)
        at_least("grad_clip", self.grad_clip, 0.0)
        within("sam_rho", self.sam_rho, 0.0, 10.0)
        at_least("grad_noise_sigma", self.grad_noise_sigma, 0.0)
        within("grad_noise_decay", self.grad_noise_decay, 0.0, 10.0)
        within("ema_decay", self.ema_decay, 0.0, 0.999999)


@dataclass(frozen=True)
class ScheduleConfig:
    """Linear warmup then cosine decay, a constant rate, or a constant rate that ReduceLROnPlateau
    cuts when the family's objective stops improving; stepped per optimiser step (plateau: per
    validation).

    Warmup is a fraction of all steps so that a short run keeps the shape of a long one, or, with
    `warmup_epochs` > 0, that many epochs.
    """

    kind: Literal["cosine", "constant", "plateau"] = "cosine"
    warmup_frac: float = 0.05
    warmup_epochs: float = 0.0  # > 0: warmup in epochs instead of warmup_frac
    warmup_start_factor: float = 0.01
    eta_min_factor: float = 0.0  # cosine floor as a fraction of optim.lr
    plateau_factor: float = 0.5  # plateau: the LR is multiplied by this ... (no seed gives either)
    plateau_patience: int = 10  # ... after this many validations without improvement

    def __post_init__(self):
        within("warmup_frac", self.warmup_frac, 0.0, 0.9)
        at_least("warmup_epochs", self.warmup_epochs, 0.0)
        within("warmup_start_factor", self.warmup_start_factor, 1e-6, 1.0)
        within("eta_min_factor", self.eta_min_factor, 0.0, 1.0)
        within("plateau_factor", self.plateau_factor, 1e-6, 0.999999)
        at_least("plateau_patience", self.plateau_patience, 0)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    seed: int = 0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    checkpoint_every: int = 1  # epochs between checkpoints; 0 = only at the end
    # epochs between validations; the first and last epoch always validate, and an epoch that
    # does not reports the latest validation's values (val_epoch says which)
    val_every: int = 1
    num_data_workers: int = 0  # DataLoader worker processes per training worker
    # Fault injection for tests, not training knobs (0 = off): the loss of this optimiser step
    # (1-based) becomes NaN; the worker raises at the start of this epoch (1-based) unless it
    # resumed from a checkpoint, as a worker lost mid-run would.
    inject_nan_at_step: int = 0
    inject_crash_at_epoch: int = 0

    def __post_init__(self):
        at_least("epochs", self.epochs, 1)
        at_least("batch_size", self.batch_size, 1)
        at_least("checkpoint_every", self.checkpoint_every, 0)
        at_least("val_every", self.val_every, 1)
        at_least("num_data_workers", self.num_data_workers, 0)
        at_least("inject_nan_at_step", self.inject_nan_at_step, 0)
        at_least("inject_crash_at_epoch", self.inject_crash_at_epoch, 0)


def check_precision(train: TrainConfig, has_gpu: bool) -> None:
    """fp16 needs a GPU's grad scaler; on CPU it is a config error, not a slow surprise."""
    if train.mixed_precision == "fp16" and not has_gpu:
        raise ConfigError("train.mixed_precision", "fp16 needs a GPU (--gpus-per-worker > 0); use bf16 or no")


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


def unflatten(flat: Mapping[str, Any], sep: str = "/") -> dict:
    """{'a/b': 1} -> {'a': {'b': 1}}: the form Optuna's parameter names take in Tune."""
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
    import inspect
    import re

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
