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
    path = str(tmp_path / "hdr_caps.parquet")
    made_up_record(path)
    runs = replay_seed("hdr_caps", path, 0, ("random", "tpe-asha", "prior-wrong-asha"), trials=4)
    random, tpe, wrong = runs
    assert random["method"] == "random" and random["trials"] == 4 and len(random["points"]) == 4 * EPOCHS
    # the default (point 0) is recorded and the best: random search's incumbent and default are its final value
    assert random["default"] == pytest.approx(0.1) and random["points"][-1][2] == pytest.approx(0.1)
    assert len(tpe["points"]) == len(wrong["points"]) == 4 * EPOCHS  # random search's spend is their budget
    # the wrong prior's sweep starts from its base point: 2 trials at a time report in turn, so the first
    # to finish is the first launched, at the 2 * 10 - 1 = 19th report, worth 30 / 10 + 1 / 10 = 3.1
    assert wrong["points"][2 * EPOCHS - 2][2] == pytest.approx(3.1)
    assert math.isnan(wrong["points"][2 * EPOCHS - 3][2])  # before it no trial had run every epoch


def test_the_replay_is_set_beside_the_real_runs_medians():
    # random search's replayed regret at 1/8 for seeds 0..9: median of seeds 0-3 (0.2, 0.4, 0.6, 0.8) is 0.5;
    # at 10 seeds the 95% interval of the median is the 2nd and 9th smallest, [0.4, 1.6]: the real 0.83 lies in it
    table = {"random": {share: {s: 0.2 * (s + 1) for s in range(10)} for share in (1 / 8, 1 / 4, 1 / 2, 1.0)}}
    line = real_run_lines("hdr_all", table)[1]
    assert "1/8 0.83 / 0.50 / yes" in line and "all 0.14 / 0.50 / no" in line
    assert real_run_lines("hdr_caps", table) == []  # no real runs of that task were kept


@pytest.mark.parametrize("flags, named", [(["--methods", "random", "pbt"], "--methods: pbt"),
                                          (["--landscapes", "/nonexistent"], "--landscapes: /nonexistent")])
def test_replay_flags_are_checked_before_anything_runs(monkeypatch, capsys, flags, named):
    monkeypatch.setattr(sys, "argv", ["search_efficiency.py", "--replay", *flags])
    with pytest.raises(SystemExit) as exit_info:
        search_efficiency.parse_args()
    assert exit_info.value.code == 2 and named in capsys.readouterr().err
