"""Local files a config names, packed on the driver and written once per node by content (no Ray:
the object store's get is given as a function; tests/ray_jobs/test_autoscaling_integration.py ships
through Ray's object store to nodes that do not have the file)."""

import os

import pytest

from losstune.trainables.engine import shipped_data
from losstune.trainables.engine.shipped_data import Packed, ShippedData, node_copy, pack


@pytest.fixture
def node_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LOSSTUNE_CACHE", str(tmp_path / "node"))
    return tmp_path / "node" / "shipped"


def packed(path, ref):
    import hashlib

    return Packed(hashlib.sha256(ref).hexdigest(), os.path.isdir(path), ref)


def test_the_local_paths_a_config_names_are_found_and_replaced_by_the_nodes_copies(tmp_path):
    data = tmp_path / "patches.npz"
    data.write_bytes(b"npz")
    folder = tmp_path / "subjects"
    folder.mkdir()
    overrides = {"data": {"path": str(data), "val_path": str(folder), "mode": "bravo"},
                 "model": {"checkpoint": str(tmp_path / "missing")}, "train": {"epochs": 3, "out": "relative/x"}}
    # existing absolute paths only: a missing one is the family's check to name, a relative one is not a file here
    assert shipped_data.local_paths(overrides) == sorted([str(data), str(folder)])
    local = shipped_data.replaced(overrides, {str(data): "/cache/a/patches.npz"})
    assert local["data"] == {"path": "/cache/a/patches.npz", "val_path": str(folder), "mode": "bravo"}
    assert local["train"] == overrides["train"]


def test_a_file_and_a_folder_arrive_whole_and_are_written_once_per_node(tmp_path, node_cache):
    data = tmp_path / "patches.npz"
    data.write_bytes(os.urandom(1000))
    folder = tmp_path / "subjects"
    (folder / "s01").mkdir(parents=True)
    (folder / "s01" / "t1.nii.gz").write_bytes(b"t1 of s01")
    (folder / "s02.txt").write_text("notes")
    fetched = []

    def fetch(ref):
        fetched.append(ref)
        return ref  # the "object store" hands back the packed bytes themselves

    for path in (data, folder):
        item = packed(str(path), pack(str(path)))
        copy = node_copy(str(path), item, fetch)
        assert copy.startswith(str(node_cache)) and os.path.basename(copy) == path.name
        assert node_copy(str(path), item, fetch) == copy  # a second run on the node reads the same copy
    assert len(fetched) == 2  # once per path, not once per run
    (copied_file,) = node_cache.glob("*/patches.npz")
    assert copied_file.read_bytes() == data.read_bytes()
    (copied_scan,) = node_cache.glob("*/subjects/s01/t1.nii.gz")
    assert copied_scan.read_bytes() == b"t1 of s01"
    (copied_notes,) = node_cache.glob("*/subjects/s02.txt")
    assert copied_notes.read_text() == "notes"
    assert not list(node_cache.glob("*/.incoming-*"))  # nothing half-written left behind


def test_changed_data_is_a_new_copy_and_the_original_may_go(tmp_path, node_cache):
    data = tmp_path / "patches.npz"
    data.write_bytes(b"first")
    first = packed(str(data), pack(str(data)))
    data.write_bytes(b"second")
    second = packed(str(data), pack(str(data)))
    data.unlink()  # the runs read their node's copies, never the driver's path
    a, b = node_copy(str(data), first, lambda r: r), node_copy(str(data), second, lambda r: r)
    assert a != b and open(a, "rb").read() == b"first" and open(b, "rb").read() == b"second"


def test_what_is_shipped_and_what_is_left_where_it_is_is_said_in_one_line(tmp_path):
    shipped = ShippedData({"/data/patches.npz": Packed("ab" * 32, False, None)}, ("/data/model",))
    assert shipped.summary() == ("data to the nodes: /data/patches.npz (file) through Ray's object store; /data/model "
                                 "read where it is (over 25% of a node's object store: every node must reach it)")
    assert ShippedData().summary() == "" and ShippedData().localised({"a": 1}) == {"a": 1}
