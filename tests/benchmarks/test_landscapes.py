"""benchmarks/landscapes.py: a design that covers every branch of a space, and a record that
resumes only under the design it was made with."""

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
    assert len(landscapes.read_record(path, made_by)) == 1
    with pytest.raises(SystemExit) as exit_info:
        landscapes.read_record(path, {**made_by, "configs": 32})
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--folder: " in err and "recorded with other configs (configs=16)" in err and err.count("\n") == 1
