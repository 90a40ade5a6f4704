"""Which trial of a sweep is best: trials ranked at a common budget, the best one, its whole config,
and the parameters a trial sampled, from the trials table (ray_jobs/results/tables.py)."""

from __future__ import annotations

import math

import pandas as pd

from losstune.trainables.config import merge, to_dict, unflatten
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family


RANK_TIERS = {"COMPLETED": 0, "EARLY_STOPPED": 1}  # every other status ranks after these, unranked


def ranked(trials: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Best first, at a common budget: the trials that ran every epoch by their last epoch's
    value, then those a scheduler stopped (their value is from an earlier epoch, not comparable:
    a default that worsens over the epochs would lose to a trial stopped at epoch 2), then the
    errored and unhealthy ones."""
    tier = trials["status"].map(RANK_TIERS).fillna(len(RANK_TIERS))
    value = trials["objective"].astype(float).where(tier < len(RANK_TIERS))
    return trials.assign(_tier=tier, _key=value if mode == "min" else -value).sort_values(
        ["_tier", "_key", "trial_id"], na_position="last").drop(columns=["_tier", "_key"]).reset_index(drop=True)


def best_trial(trials: pd.DataFrame):
    """The top row if it is a healthy, finished trial, else None."""
    if len(trials) and trials.loc[0, "status"] in ("COMPLETED", "EARLY_STOPPED") and math.isfinite(
            trials.loc[0, "objective"]):
        return trials.loc[0]
    return None


def best_config(trials: pd.DataFrame, meta: dict) -> dict | None:
    """The best trial's whole effective config, the form ray_jobs/train.py --config takes."""
    best = best_trial(trials)
    if best is None:
        return None
    overrides = merge(meta["base"], unflatten(trial_point(best)))
    family = load_family(meta["family"])
    return to_dict(family.trained_config(make_config(family, overrides, meta.get("preset", ""))))


def trial_point(row) -> dict:
    """The flat parameters ("optim/lr": 0.01) a trial sampled, from its trials-table row."""
    return {k[len("config/"):]: _plain(v) for k, v in row.items() if k.startswith("config/") and not _missing(v)}


def _plain(value):
    """numpy scalars (as pandas hands them out) -> Python values."""
    return value.item() if hasattr(value, "item") else value


def _missing(value) -> bool:
    return value is None or isinstance(value, float) and math.isnan(value)
