"""benchmarks/replay.py: a recorded config answers with its own curve, any other with the
surrogate's, whose fidelity is measured on configs it was fitted without, on records made up here."""

import json
import math
import os
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

from replay import Landscape, fidelity, seed_agreement_of_record  # noqa: E402


def record(points: list[dict], curves: dict) -> pd.DataFrame:
    """Rows as benchmarks/landscapes.py writes them: {(config, seed): ([objective per epoch], stop)}."""
    rows = []
    for (config, seed), (values, stop) in curves.items():
        for epoch, value in enumerate(values, 1):
            rows.append({"config": config, "seed": seed, "epoch": epoch, "objective": value,
                         "stop_reason": stop if epoch == len(values) else "", "point": json.dumps(points[config])})
    return pd.DataFrame(rows)


POINTS = [{"mode": "A", "x": 0.1}, {"mode": "A", "x": 1.0}, {"mode": "B", "y": 5.0}]
CURVES = {(0, 0): ([2.0, 1.0], ""), (0, 1): ([2.0, 1.0], ""), (1, 0): ([4.0, 3.0], ""), (1, 1): ([4.0, 3.0], ""),
          (2, 0): ([9.0], "diverged"), (2, 1): ([8.0, 7.0], "")}


def test_a_recorded_config_replays_its_own_curve_at_each_seed():
    landscape = Landscape(record(POINTS, CURVES))
    assert landscape.curve({"mode": "B", "y": 5.0}, seed=0).objective == [9.0]
    assert landscape.curve({"mode": "B", "y": 5.0}, seed=0).stop_reason == "diverged"
    assert landscape.curve({"mode": "B", "y": 5.0}, seed=3).objective == [8.0, 7.0]  # seed 3 -> recorded seed 1


def test_another_config_gets_the_surrogates_curve_and_no_branch_the_record_lacks():
    landscape = Landscape(record(POINTS, CURVES))
    # x = 10^-0.5 lies halfway (on the log scale) between 0.1 and 1.0, the two configs that ran both
    # epochs: a stationary kernel weighs them alike, so the GP's mean there is theirs, [3, 2] (the
    # normalised targets -1 and +1 cancel); their seeds agree, so no seed noise is added, and the
    # nearest run went on (too few stops to learn from: the nearest run's call)
    curve = landscape.curve({"mode": "A", "x": 10 ** -0.5}, seed=0)
    assert curve.objective == pytest.approx([3.0, 2.0], abs=1e-6) and curve.stop_reason == ""
    # nearer 0.1 than 1.0: its final value lies between theirs, nearer 0.1's
    assert 1.0 < landscape.curve({"mode": "A", "x": 0.15}, seed=0).objective[-1] < 2.0
    with pytest.raises(KeyError):  # no recorded config has parameter z: a space the record does not hold
        landscape.curve({"mode": "A", "z": 0.5}, seed=0)


def test_a_small_branch_learns_a_shared_parameter_from_every_branch():
    # branch A: 20 configs, final log10(x) + 3 over x in [0.001, 1]; branch B (y as well): 3 configs,
    # all at x = 0.03, so B alone says nothing of x. One model over both ranks B's x as A's does
    rng = np.random.default_rng(0)
    points = [{"mode": "A", "x": float(x)} for x in 10 ** rng.uniform(-3, 0, 20)]
    points += [{"mode": "B", "x": 0.03, "y": y} for y in (1.0, 2.0, 4.0)]
    curves = {(i, s): ([math.log10(p["x"]) + 3 + 0.5 * (p["mode"] == "B")], "") for i, p in enumerate(points)
              for s in (0, 1)}
    landscape = Landscape(record(points, curves))
    low, high = (landscape.curve({"mode": "B", "x": x, "y": 2.0}, seed=0).objective[-1] for x in (0.002, 0.5))
    assert high - low > 1.0, (low, high)  # A's slope says about 2.4 over that span


def test_the_surrogate_ranks_held_out_configs_of_a_smooth_landscape():
    # 60 configs of one branch, objective (log10 x + 1)^2 + 1 / epoch, seed noise 0.01: the
    # surrogate's held-out ranking should follow the record's closely
    rng = np.random.default_rng(0)
    xs = 10 ** rng.uniform(-3, 0, 60)
    points = [{"x": float(x)} for x in xs]
    curves = {(i, s): ([(math.log10(x) + 1) ** 2 + 1 / e + rng.normal(0, 0.01) for e in (1, 2, 3)], "")
              for i, x in enumerate(xs) for s in (0, 1)}
    measured = fidelity(Landscape(record(points, curves)))
    assert measured["n"] == 59 and measured["rho"] > 0.9, measured  # every config but the default held out once
    assert measured["stops"] == measured["stops_majority"] == 1.0 and measured["stop_runs"] == 118


def test_healthy_to_the_end_needs_every_epoch_at_every_seed_and_no_stop():
    landscape = Landscape(record(POINTS, CURVES))
    # config 2 stopped for `diverged` at epoch 1 of 2 at seed 0: not healthy to the end
    assert [landscape.healthy_to_the_end(i) for i in range(3)] == [True, True, False]
    # a record stopped part-way: config 1 recorded at seed 0 alone is judged by that seed
    partial = Landscape(record(POINTS, {k: v for k, v in CURVES.items() if k != (1, 1)}))
    assert partial.healthy_to_the_end(1)


def test_seed_agreement_of_the_record_ranks_seed_against_seed():
    # three configs whose final values keep their order at both seeds (1 < 3 < 5 and 1 < 4 < 6): rho 1;
    # config 3 ran 1 of 2 epochs at seed 1, so it is left out of N
    points = [{"x": 0.1}, {"x": 0.2}, {"x": 0.3}, {"x": 0.4}]
    curves = {(0, 0): ([2.0, 1.0], ""), (0, 1): ([2.0, 1.0], ""), (1, 0): ([4.0, 3.0], ""),
              (1, 1): ([5.0, 4.0], ""), (2, 0): ([6.0, 5.0], ""), (2, 1): ([7.0, 6.0], ""),
              (3, 0): ([1.0, 0.5], ""), (3, 1): ([9.0], "diverged")}
    assert seed_agreement_of_record(Landscape(record(points, curves))) == {"rho": 1.0, "n": 3}
    # swap config 1's and 2's finals at seed 1: ranks (1, 2, 3) against (1, 3, 2), rho = 1 - 6 * 2 / (3 * 8) = 0.5
    curves[(1, 1)], curves[(2, 1)] = ([7.0, 6.0], ""), ([5.0, 4.0], "")
    assert seed_agreement_of_record(Landscape(record(points, curves)))["rho"] == pytest.approx(0.5)


def test_a_stop_is_learned_from_the_runs_and_takes_the_nearest_stopped_runs_epoch():
    # one branch, x on a log scale: 4 configs below x = 1 ran 3 epochs, ending at 1 + |log10 x| / 10;
    # 4 at x = 3 or more stopped at epoch 1 for `loss_imbalance`, at both seeds alike
    low, high = [0.01, 0.03, 0.1, 0.3], [3.0, 10.0, 30.0, 100.0]
    points = [{"x": x} for x in low + high]
    curves = {}
    for seed in (0, 1):
        for i, x in enumerate(low):
            curves[(i, seed)] = ([3.0, 2.0, 1.0 + abs(math.log10(x)) / 10], "")
        for i, x in enumerate(high, len(low)):
            curves[(i, seed)] = ([5.0], "loss_imbalance")
    landscape = Landscape(record(points, curves))
    stopped = landscape.curve({"x": 50.0}, seed=0)
    assert stopped.stop_reason == "loss_imbalance" and len(stopped.objective) == 1
    going_on = landscape.curve({"x": 0.05}, seed=0)  # learned from the 4 that ran every epoch
    assert going_on.stop_reason == "" and len(going_on.objective) == 3
    assert 1.0 < going_on.objective[-1] < 1.2  # between the finals of x = 0.03 (1.15) and 0.1 (1.1), about
    assert fidelity(landscape, folds=7)["stops"] == 1.0  # each held out, the other runs call it right


def test_seed_noise_comes_from_a_config_recorded_as_long_at_every_seed():
    # config 2 ran 1 epoch at seed 0 and 2 at seed 1 (mean curve 1 epoch long): a 2-epoch curve's
    # noise can only come from configs 0 and 1, whose seeds agree, so it is 0; config 3 ran 2
    # epochs at both seeds, 6 - 5 = +1 and 4 - 5 = -1; a 1-epoch curve's noise may also come from
    # config 2's first epoch, 9 - 8.5 = +0.5 or 8 - 8.5 = -0.5
    points = POINTS + [{"mode": "B", "y": 50.0}]
    curves = {**CURVES, (3, 0): ([6.0, 6.0], ""), (3, 1): ([4.0, 4.0], "")}
    landscape = Landscape(record(points, curves))
    for seed in range(8):
        assert landscape.seed_noise([0, 1, 2], seed, 2).tolist() == [0.0, 0.0]
        assert landscape.seed_noise([2, 3], seed, 2).tolist() in ([1.0, 1.0], [-1.0, -1.0])
        assert abs(landscape.seed_noise([2, 3], seed, 1)[0]) in (0.5, 1.0)
