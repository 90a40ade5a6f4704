"""benchmarks/replay.py: a recorded config answers with its own curve, any other with its branch's
nearest recorded configs, and the surrogate's fidelity is measured, on records made up here."""

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


def test_another_config_gets_its_branchs_nearest_configs_weighted_by_distance():
    landscape = Landscape(record(POINTS, CURVES))
    # x = 10^-0.5 lies halfway (on the log scale) between 0.1 and 1.0: equal weights, so the mean of
    # [2, 1] and [4, 3] is [3, 2]; both configs' seeds agree, so no seed noise is added
    curve = landscape.curve({"mode": "A", "x": 10 ** -0.5}, seed=0)
    assert curve.objective == pytest.approx([3.0, 2.0]) and curve.stop_reason == ""
    # x = 0.15 is nearer 0.1: log distances 0.176 and 0.824 of a span of 1, weights 1/0.176 and 1/0.824,
    # final value (1 / 0.176 * 1 + 1 / 0.824 * 3) / (1 / 0.176 + 1 / 0.824) = 1.352
    d_near, d_far = math.log10(0.15) - math.log10(0.1), 1 - (math.log10(0.15) - math.log10(0.1))
    expected = (1 / d_near * 1 + 1 / d_far * 3) / (1 / d_near + 1 / d_far)
    assert landscape.curve({"mode": "A", "x": 0.15}, seed=0).objective[-1] == pytest.approx(expected)
    with pytest.raises(KeyError):  # branches never mix: no recorded config has parameter z
        landscape.curve({"mode": "A", "z": 0.5}, seed=0)


def test_the_surrogate_ranks_held_out_configs_of_a_smooth_landscape():
    # 60 configs of one branch, objective (log10 x + 1)^2 + 1 / epoch, seed noise 0.01: the
    # surrogate's held-out ranking should follow the record's closely
    rng = np.random.default_rng(0)
    xs = 10 ** rng.uniform(-3, 0, 60)
    points = [{"x": float(x)} for x in xs]
    curves = {(i, s): ([(math.log10(x) + 1) ** 2 + 1 / e + rng.normal(0, 0.01) for e in (1, 2, 3)], "")
              for i, x in enumerate(xs) for s in (0, 1)}
    measured = fidelity(Landscape(record(points, curves)), held_out=20)
    assert measured["n"] == 20 and measured["rho"] > 0.9, measured


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


def test_a_run_that_goes_on_averages_only_neighbours_that_ran_as_long_and_a_stop_is_the_nearests():
    # one branch, x on a log scale: configs at 0.1 (ran 3 epochs, ends 1), 1.0 (stopped at epoch 1 for
    # `loss_imbalance`), 10 (ran 3 epochs, ends 3), each alike at both seeds (no seed noise)
    points = [{"x": 0.1}, {"x": 1.0}, {"x": 10.0}]
    curves = {}
    for seed in (0, 1):
        curves[(0, seed)] = ([3.0, 2.0, 1.0], "")
        curves[(1, seed)] = ([5.0], "loss_imbalance")
        curves[(2, seed)] = ([5.0, 4.0, 3.0], "")
    landscape = Landscape(record(points, curves))
    # x = 0.2 is nearest 0.1 (healthy): it runs all 3 epochs, averaging 0.1 and 10 alone (log distances
    # 0.301 and 1.699 of a span of 2, weights 1/0.151 and 1/0.849): final (1/0.151 * 1 + 1/0.849 * 3) / (...)
    near, far = (math.log10(0.2) + 1) / 2, (1 - math.log10(0.2)) / 2
    expected = (1 / near * 1 + 1 / far * 3) / (1 / near + 1 / far)
    curve = landscape.curve({"x": 0.2}, seed=0)
    assert len(curve.objective) == 3 and curve.stop_reason == "" and curve.objective[-1] == pytest.approx(expected)
    # x = 0.9 is nearest 1.0: it stops at epoch 1 for the same reason
    assert landscape.curve({"x": 0.9}, seed=0).stop_reason == "loss_imbalance"
    assert len(landscape.curve({"x": 0.9}, seed=0).objective) == 1


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
