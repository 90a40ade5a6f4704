"""What Ray Train ranks a run's checkpoints by, and the one rule every table and link that names a
"best checkpoint" follows, so that they all name the checkpoint Ray keeps."""

from __future__ import annotations

import math
from typing import Iterable, TypeVar

# The epoch's objective where it validated that epoch's own weights, NaN where it carries an earlier
# validation (trainables.engine.epoch_metrics; trainables.engine.driver.keep_checkpoints ranks by it).
CHECKPOINT_SCORE = "checkpoint_score"

Item = TypeVar("Item")


def best_scored(scored: Iterable[tuple[float, Item]], mode: str) -> Item | None:
    """The item of the best finite score, of (score, item) pairs in the order they were reported;
    None where none has one. As Ray Train ranks checkpoints (its _insert_into_sorted_list): NaN is
    never best, and of equal scores the later wins. Ray keeps the later of a tie and may delete the
    earlier, so a link to the first would point at a deleted folder."""
    best = None
    for score, item in scored:
        score = float(score) if score is not None else math.nan
        if math.isfinite(score) and (best is None or (score <= best[0] if mode == "min" else score >= best[0])):
            best = (score, item)
    return best[1] if best else None
