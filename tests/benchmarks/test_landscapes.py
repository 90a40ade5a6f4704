"""benchmarks/landscapes.py: a design that covers every branch of a space, and a record that
resumes only under the design it was made with."""

import json
import os
import sys

import pandas as pd
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

import landscapes  # noqa: E402
from search_tasks import TASKS  # noqa: E402


def test_the_design_starts_at_the_default_and_draws_every_branch_alike():
    points = landscapes.design(TASKS["hdr_caps"], 16)
    assert points[0] == {"caps/mode": "A", "model/learnable_scale": False, "model/adaptive_scaler": False,
                         "caps/abs_max": 16.0, "caps/alpha": 1.2, "model/output_norm": False,
                         "caps/clamp_enabled": False}  # hdr_patch's documented default
    branches = pd.Series([(p["caps/mode"], p["caps/clamp_enabled"]) for p in points[1:]]).value_counts()
    # 4 branches (mode A / B, clamp on / off), 16 // 4 = 4 configs each, however rarely random draws reach one
    assert len(branches) == 4 and (branches == 4).all()
    assert points[1:] == landscapes.design(TASKS["hdr_caps"], 16)[1:]  # the same design again: a record resumes


def test_runs_go_seed_by_seed_and_skip_what_is_recorded():
    assert landscapes.runs_to_do([{}, {}, {}], 2, {(0, 0), (2, 1)}) == [(1, 0), (2, 0), (0, 1), (1, 1)]


def test_a_record_of_another_design_is_refused_with_exit_2(tmp_path, capsys):
    path = str(tmp_path / "hdr_caps.parquet")
    made_by = {"task": "hdr_caps", "configs": 16, "seeds": 2}
    landscapes.write_record(path, pd.DataFrame({"config": [0], "seed": [0], "epoch": [1]}), made_by)
    assert len(landscapes.read_record(path, {**made_by, "configs": 32})) == 1  # configs: checked by point
    with pytest.raises(SystemExit) as exit_info:
        landscapes.read_record(path, {**made_by, "seeds": 3})
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--folder: " in err and "recorded with other seeds (seeds=2)" in err and err.count("\n") == 1


def test_a_larger_design_holds_the_recorded_configs_and_renumbers_them(tmp_path, capsys):
    small, large = landscapes.design(TASKS["hdr_caps"], 8), landscapes.design(TASKS["hdr_caps"], 16)
    # each branch's first 2 Sobol points (8 // 4) are the first 2 of its 4 (16 // 4): configs 1-8 of the
    # small design are configs 1, 2, 5, 6, 9, 10, 13, 14 of the large one, the default 0 in both
    rows = pd.DataFrame({"config": range(len(small)), "seed": 0, "epoch": 1,
                         "point": [json.dumps(p) for p in small]})
    renumbered = landscapes.numbered_by_design(rows, large, "hdr_caps.parquet")
    assert renumbered["config"].tolist() == [0, 1, 2, 5, 6, 9, 10, 13, 14]
    assert all(large[i] == small[k] for k, i in enumerate(renumbered["config"]))
    with pytest.raises(SystemExit) as exit_info:  # a smaller design lacks configs the record holds
        landscapes.numbered_by_design(renumbered.assign(point=[json.dumps(p) for p in large[:9]]),
                                      small, "hdr_caps.parquet")
    assert exit_info.value.code == 2 and "--configs: hdr_caps.parquet holds" in capsys.readouterr().err
