"""benchmarks/replay_sweep.py: a sweep's own plan, searcher and ASHA replayed against a landscape
made up here for hdr_patch's `caps` space, without Ray."""

import json
import math
import os
import sys
from dataclasses import dataclass, field

import pandas as pd
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

from replay import Landscape  # noqa: E402
from replay_sweep import replay_sweep, replay_through_tune  # noqa: E402
from search_runs import Recorder  # noqa: E402

from losstune.trainables.config import flatten  # noqa: E402

from losstune.search_spaces import default_point, sample_points  # noqa: E402
from losstune.trainables.family_api import make_config  # noqa: E402
from losstune.trainables.registry import load_family  # noqa: E402

EPOCHS = 4


def made_up_landscape() -> Landscape:
    """The default and 40 random points of `caps`, each epoch e worth base + 1 / e, base 1 in
    Mode A and 2 in Mode B (so B is behind from epoch 1), at seeds 0 and 1 alike."""
    family = load_family("hdr_patch")
    config = make_config(family, family.smoke)
    space = family.space("caps", config)
    points = [default_point(space, config), *sample_points(space, 40, seed=3)]
    rows = []
    for index, point in enumerate(points):
        base = 1.0 if point["caps/mode"] == "A" else 2.0
        for seed in (0, 1):
            for epoch in range(1, EPOCHS + 1):
                rows.append({"config": index, "seed": seed, "epoch": epoch, "objective": base + 1 / epoch,
                             "stop_reason": "", "point": json.dumps(point)})
    return Landscape(pd.DataFrame(rows))


def argv(tmp_path, *flags) -> list[str]:
    return ["hdr_patch", "--space", "caps", "--smoke-test", "--epochs", str(EPOCHS), "--confirm-top", "0",
            "--storage", str(tmp_path), "--set", "train.seed=0", *flags]


def recorder(budget: int) -> Recorder:
    family = load_family("hdr_patch")
    config = make_config(family, family.smoke)
    return Recorder("val/log_l1", "min", EPOCHS, budget=budget, default_point=default_point(family.space("caps", config),
                                                                                           config))


def test_random_search_replays_every_trial_to_the_end_and_the_default_its_recorded_curve(tmp_path):
    stop = recorder(budget=10_000)
    launched = replay_sweep(argv(tmp_path, "--search", "random", "--scheduler", "none", "--trials", "6",
                                 "--name", "r"), made_up_landscape(), stop)
    assert launched == 6 and len(stop.points) == 6 * EPOCHS  # every trial ran every epoch
    assert stop.default == pytest.approx(1.0 + 1 / EPOCHS)  # the default (Mode A) is recorded: 1.25 exactly
    assert stop.incumbent <= stop.default


def test_asha_stops_trials_behind_at_its_rung_but_never_the_default(tmp_path):
    stop = recorder(budget=10_000)
    launched = replay_sweep(argv(tmp_path, "--search", "optuna", "--scheduler", "asha", "--grace-epochs", "1",
                                 "--trials", "8", "--max-concurrent", "2", "--name", "a"), made_up_landscape(), stop)
    assert launched == 8
    assert len(stop.points) < 8 * EPOCHS  # some trial was stopped before its end
    assert stop.default == pytest.approx(1.25) and math.isfinite(stop.incumbent)


def test_a_scheduler_that_pauses_trials_is_not_replayed(tmp_path):
    with pytest.raises(NotImplementedError, match="hyperband"):
        replay_sweep(argv(tmp_path, "--scheduler", "hyperband", "--trials", "4", "--name", "h"), made_up_landscape())


@dataclass
class ConfigsSeen(Recorder):
    """A Recorder that also keeps each config that reported its last epoch."""

    finished: list = field(default_factory=list)

    def __call__(self, trial_id, result) -> bool:
        counted = len(self.points)
        stop = super().__call__(trial_id, result)
        if len(self.points) > counted and result.get("epoch") == EPOCHS:
            self.finished.append(json.dumps(flatten(result["config"]), sort_keys=True))
        return stop


def test_tune_itself_replays_what_the_loop_does(local_ray, tmp_path):
    # Ray, because the check is that the loop stands in for Tune's own Tuner, its actors and event
    # loop, with the record as a Tune function trainable; it shares the session's Ray. Random search
    # from one seed draws the same configs whatever order results come in, so both must train the
    # same 6 configs and end with the same incumbent and default.
    seen = {}
    for how, run in (("loop", replay_sweep), ("tune", replay_through_tune)):
        stop = ConfigsSeen(**vars(recorder(budget=10_000)))
        flags = argv(tmp_path / how, "--search", "random", "--scheduler", "none", "--trials", "6", "--seed", "3",
                     "--name", how)
        seen[how] = (run(flags, made_up_landscape(), stop), stop)
    (loop_trials, loop), (tune_trials, tune) = seen["loop"], seen["tune"]
    assert loop_trials == tune_trials == 6 and len(loop.finished) == 6
    assert sorted(tune.finished) == sorted(loop.finished)
    assert len(tune.points) == len(loop.points) == 6 * EPOCHS  # the epochs spent, counted alike
    assert tune.default == loop.default == pytest.approx(1.25) and tune.incumbent == loop.incumbent
