"""gpu.py's up-front check: every family's config is built and its data checked before Ray starts,
so a config that cannot train here stops the script with one line, not a worker's traceback."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

from gpu import checked_changes  # noqa: E402


def test_the_compression_default_without_its_perceptual_weights_stops_with_the_field_named():
    # the GPU run on an H200 reached a worker's FileNotFoundError: '' for this (no file is shipped)
    with pytest.raises(SystemExit, match=r"^benchmarks/gpu.py: medgen_compression: loss\.weights\.perceptual > 0 "
                                         r"needs loss\.perceptual_weights_path"):
        checked_changes(["hdr_patch", "medgen_compression"], [])


def test_set_changes_only_the_family_it_names():
    changes = checked_changes(["hdr_patch", "medgen_compression"], ["medgen_compression:loss.weights.perceptual=0"])
    assert changes == {"hdr_patch": {}, "medgen_compression": {"loss": {"weights": {"perceptual": 0}}}}


@pytest.mark.parametrize("item", ["loss.weights.perceptual=0", "npt:train.epochs=2", "hdr_patch:epochs"])
def test_a_set_without_a_chosen_family_or_a_value_stops_naming_it(item):
    with pytest.raises(SystemExit, match="--set"):
        checked_changes(["hdr_patch"], [item])
