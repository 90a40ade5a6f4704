"""The stand-in model that step_overhead.py measures the platform's fixed per-step cost on, and
its interleaved comparison of the epoch code with the bare loop on a family's model."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

from step_loops import bare_epochs, loop_epochs, stand_in  # noqa: E402
from step_overhead import epoch_code_here  # noqa: E402

from losstune.trainables.config import merge  # noqa: E402
from losstune.trainables.family_api import make_config  # noqa: E402
from losstune.trainables.registry import load_family  # noqa: E402


@pytest.mark.parametrize("n_tensors", [3, 26])
def test_the_stand_in_has_as_many_parameter_tensors_as_asked(n_tensors):
    cfg = make_config(load_family("hdr_patch"), {})
    model = stand_in(n_tensors).build(cfg).model
    assert sum(1 for p in model.parameters() if p.requires_grad) == n_tensors


def test_the_bare_loop_and_the_platforms_epoch_both_step_through_the_stand_in():
    cfg = make_config(load_family("hdr_patch"), {"train": {"batch_size": 256}})
    family = stand_in(4)
    for epochs in (bare_epochs(family, cfg, 2), loop_epochs(family, cfg, 2, prepare=False),
                   loop_epochs(family, cfg, 2)):
        seconds = list(epochs)
        assert len(seconds) == 2 and all(0 < s < 1 for s in seconds)  # per step, 4 steps an epoch


def test_the_epoch_code_and_the_bare_loop_take_turns_on_the_familys_model():
    module = load_family("hdr_patch")
    result = epoch_code_here("hdr_patch", merge(module.smoke, {"train": {"epochs": 3}}), keep_memory=False)
    assert set(result) == {"ratio", "faults_bare", "faults_platform"}
    assert 0.3 < result["ratio"] < 3  # the same model and batches: within a factor of each other
