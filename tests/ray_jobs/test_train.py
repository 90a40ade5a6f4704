"""ray_jobs.train's pick of the best kept checkpoint."""

import math

from ray_jobs.train import best_checkpoint
from trainables.families import CHECKPOINT_SCORE


def kept(*scores):
    return [(f"checkpoint_{epoch}", {"epoch": epoch, CHECKPOINT_SCORE: score}) for epoch, score in enumerate(scores, 1)]


def test_the_best_score_wins_and_epochs_without_their_own_validation_are_passed_over():
    # epoch 2 carried epoch 1's validation (NaN score): min over 0.9, 0.7 is epoch 3's 0.7
    assert best_checkpoint(kept(0.9, math.nan, 0.7, 0.8), "min")[0] == "checkpoint_3"
    assert best_checkpoint(kept(0.9, math.nan, 0.7, 0.8), "max")[0] == "checkpoint_1"


def test_no_scored_checkpoint_gives_none():
    assert best_checkpoint(kept(math.nan), "min") is None
    assert best_checkpoint([], "min") is None
