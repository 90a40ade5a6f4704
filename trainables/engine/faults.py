"""Faults the tests inject into training runs, outside any user's config.

Off unless the environment variable LOSSTUNE_FAULTS names a JSON file that exists (the tests set
the variable before their Ray starts, so every worker inherits it, and write the file only while
a test wants a fault: tests/conftest.py `inject_faults`). The file holds any of
  crash_at_epoch   raise at the start of this epoch, on a run's first attempt only (not after a restart)
  nan_at_step      make this optimiser step's loss NaN
  epoch_sleep_s    sleep this long before each epoch, on a run's first attempt only (a window in
                   which a test can kill the run however fast the machine trains)
and, optionally, `when`: {dotted config key: value}, so that only the runs of a sweep whose config
has those values get the faults. Read once per run; costs one lookup when off.
"""

from __future__ import annotations

import json
import os

from losstune.trainables.config import get_path
import time

ENV = "LOSSTUNE_FAULTS"


def injected(cfg) -> dict:
    """The faults for this run: {} unless the file exists and its `when` matches `cfg`."""
    path = os.environ.get(ENV)
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        faults = json.load(f)
    when = faults.pop("when", {})
    return faults if all(get_path(cfg, key) == value for key, value in when.items()) else {}


def crash_if_due(faults: dict, epoch: int, restarts: int) -> None:
    if epoch == faults.get("crash_at_epoch") and restarts == 0:
        raise RuntimeError(f"injected crash at epoch {epoch} ({ENV})")


def poisoned(faults: dict, step: int, loss):
    return loss * float("nan") if step == faults.get("nan_at_step") else loss


def sleep_if_due(faults: dict, restarts: int) -> None:
    if faults.get("epoch_sleep_s") and restarts == 0:
        time.sleep(faults["epoch_sleep_s"])
