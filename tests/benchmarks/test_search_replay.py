"""benchmarks/search_replay.py: the protocol of issue 75 at one seed against a landscape of
hdr_patch's `caps` space made up here, its wrong prior, and its lines beside the real runs."""

import json
import math
import os
import sys

import pandas as pd
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

import search_efficiency  # noqa: E402
from replay import Landscape  # noqa: E402
from search_replay import real_run_lines, replay_seed, wrong_point  # noqa: E402

from losstune.search_spaces import default_point, sample_points  # noqa: E402
from losstune.trainables.family_api import make_config  # noqa: E402
from losstune.trainables.registry import load_family  # noqa: E402

EPOCHS = 10  # hdr_caps's full length


def made_up_record(path: str) -> Landscape:
    """The default and 30 random points of `caps`; at every epoch e a point is worth its rank r (0 the
    default, 30 the last) / 10 + 1 / e, at seeds 0 and 1 alike: the default is the best, point 30
    the worst."""
    family = load_family("hdr_patch")
    config = make_config(family, {})
    points = [default_point(family.space("caps", config), config), *sample_points(family.space("caps", config), 30,
                                                                                    seed=5)]
    rows = [{"config": i, "seed": s, "epoch": e, "objective": i / 10 + 1 / e, "stop_reason": "",
             "point": json.dumps(point)} for i, point in enumerate(points) for s in (0, 1) for e in range(1, EPOCHS + 1)]
    pd.DataFrame(rows).to_parquet(path)
    return Landscape.read(path)


def test_the_wrong_prior_is_the_worst_config_that_ran_healthy_to_the_end(tmp_path):
    landscape = made_up_record(str(tmp_path / "hdr_caps.parquet"))
    assert wrong_point(landscape, "min") == landscape.points[30]
    assert wrong_point(landscape, "max") == landscape.points[0]


def test_one_seed_replays_random_first_and_gives_every_method_its_spend(tmp_path):
    landscape = made_up_record(str(tmp_path / "hdr_caps.parquet"))
    runs = replay_seed("hdr_caps", landscape, 0, ("random", "tpe-asha", "prior-wrong-asha"), trials=4)
    random, tpe, wrong = runs
    assert random["method"] == "random" and random["trials"] == 4 and len(random["points"]) == 4 * EPOCHS
    # the default (point 0) is recorded and the best: random search's incumbent and default are its final value
    assert random["default"] == pytest.approx(0.1) and random["points"][-1][2] == pytest.approx(0.1)
    assert len(tpe["points"]) == len(wrong["points"]) == 4 * EPOCHS  # random search's spend is their budget
    # the wrong prior's sweep starts from its base point: 2 trials at a time report in turn, so the first
    # to finish is the first launched, at the 2 * 10 - 1 = 19th report, worth 30 / 10 + 1 / 10 = 3.1
    assert wrong["points"][2 * EPOCHS - 2][2] == pytest.approx(3.1)
    assert math.isnan(wrong["points"][2 * EPOCHS - 3][2])  # before it no trial had run every epoch


def test_the_replay_is_set_beside_the_real_runs_as_they_were_figured():
    # random search at 10 seeds, default 1.0, its incumbent 0.0 at even seeds and 0.5 at odd ones from the
    # first epoch. At seeds 0-3 the best is 0: regrets 0, 0.5, 0, 0.5, median 0.25. Over sets of 4 of the
    # 10 seeds: 2 even -> 0.25, 1 even -> 0.5 (P = 5 * 10 / 210 = 0.24), 0, 3 or 4 even -> 0 (P = 0.29),
    # so the 95% range of a 4-seed median is [0, 0.5]: the real 0.32 at 1/4 lies in it, 0.83 at 1/8 not
    runs = [{"method": "random", "seed": s, "default": 1.0, "points": [(e, 0.0, 0.0 if s % 2 == 0 else 0.5)
                                                                       for e in range(1, 9)]} for s in range(10)]
    line = real_run_lines("hdr_all", runs, "min")[1]
    assert "1/8 0.83 / 0.25 / [0.00, 0.50] OUT" in line and "1/4 0.32 / 0.25 / [0.00, 0.50] in" in line
    assert real_run_lines("hdr_caps", runs, "min") == []  # no real runs of that task were kept


@pytest.mark.parametrize("flags, named", [(["--methods", "random", "pbt"], "--methods: pbt"),
                                          (["--landscapes", "/nonexistent"], "--landscapes: /nonexistent")])
def test_replay_flags_are_checked_before_anything_runs(monkeypatch, capsys, flags, named):
    monkeypatch.setattr(sys, "argv", ["search_efficiency.py", "--replay", *flags])
    with pytest.raises(SystemExit) as exit_info:
        search_efficiency.parse_args()
    assert exit_info.value.code == 2 and named in capsys.readouterr().err
