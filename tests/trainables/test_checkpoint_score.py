import math
from types import SimpleNamespace

import pytest
from ray.train.v2._internal.execution.checkpoint.checkpoint_manager import _insert_into_sorted_list

from losstune.trainables.checkpoint_score import best_scored

NAN = math.nan


def test_best_scored_by_hand():
    # min: 0.5, 0.3, NaN, 0.3 -> the two 0.3 tie and the later ("d") wins; NaN never counts
    assert best_scored([(0.5, "a"), (0.3, "b"), (NAN, "c"), (0.3, "d")], "min") == "d"
    # max: 0.5 is best alone
    assert best_scored([(0.5, "a"), (0.3, "b"), (NAN, "c"), (0.3, "d")], "max") == "a"
    # nothing scored (NaN, missing) -> None
    assert best_scored([(NAN, "a"), (None, "b")], "min") is None
    assert best_scored([], "max") is None


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("scores", [[0.3, 0.3, 0.3, 0.3], [0.5, 0.3, 0.3, 0.4], [NAN, 0.2, 0.2, NAN], [0.1, 0.9, 0.1]])
def test_the_best_is_the_one_ray_train_ranks_best_and_keeps(scores, mode):
    # A sweep's tables and its Optuna links named different checkpoints of one trial whose epochs
    # tied: each took the first of the tie, Ray ranks the later best and had deleted the first.
    # Here Ray's own ranking (checkpoints in the order reported, num_to_keep=2) against best_scored.
    ranked, report_index = [], {}
    for index, score in enumerate(scores):
        result = SimpleNamespace(checkpoint=f"checkpoint_{index}", score=score)
        report_index[result.checkpoint] = index
        sign = 1.0 if mode == "max" else -1.0  # as Ray's _get_checkpoint_score: NaN below every number
        _insert_into_sorted_list(ranked, result, key=lambda r: (not math.isnan(r.score), sign * r.score
                                                                if not math.isnan(r.score) else 0.0),
                                 checkpoint_to_report_index=report_index)
    kept = ranked[-2:]
    ours = best_scored([(s, f"checkpoint_{i}") for i, s in enumerate(scores)], mode)
    assert ours == ranked[-1].checkpoint and ours in [r.checkpoint for r in kept]
