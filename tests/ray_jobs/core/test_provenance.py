"""What a sweep records of where its numbers come from."""

import shutil
import subprocess

from losstune.ray_jobs.core import provenance


def test_a_files_hash_is_the_sha256_of_its_bytes(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"abc")
    # sha256("abc"), the FIPS 180-2 test vector
    assert provenance.content_hash(str(tmp_path / "a.txt")) == (
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_a_folders_hash_follows_its_content_not_its_place(tmp_path):
    data = tmp_path / "subjects"
    (data / "s1").mkdir(parents=True)
    (data / "s1" / "t1.nii").write_bytes(b"\x01\x02")
    (data / "s2.txt").write_bytes(b"x")
    moved = shutil.copytree(data, tmp_path / "elsewhere")
    assert provenance.content_hash(str(data)) == provenance.content_hash(str(moved))
    (moved / "s2.txt").write_bytes(b"y")
    assert provenance.content_hash(str(data)) != provenance.content_hash(str(moved))


def test_git_state_names_the_commit_and_a_dirty_tree(tmp_path):
    assert provenance.git_state(str(tmp_path)) == {}  # not a checkout
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "f").write_text("1")
    git("add", "f")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "one")
    state = provenance.git_state(str(tmp_path))
    assert len(state["commit"]) == 40 and state["dirty"] is False
    (tmp_path / "f").write_text("2")
    assert provenance.git_state(str(tmp_path))["dirty"] is True


def test_the_record_and_its_line_in_the_report(tmp_path):
    (tmp_path / "p.npz").write_bytes(b"abc")
    record = provenance.provenance(["losstune-sweep", "hdr_patch"], [str(tmp_path / "p.npz")])
    assert record["command"] == "losstune-sweep hdr_patch" and record["packages"]["torch"] != "not installed"
    assert record["data"] == {str(tmp_path / "p.npz"): provenance.content_hash(str(tmp_path / "p.npz"))}
    assert provenance.provenance(["x"], [])["data"] == "synthetic"
    line = provenance.summary(record)
    assert line.startswith("provenance: commit ") and "torch " in line and "p.npz sha256:ba7816bf" in line
    assert provenance.data_paths({"data": {"path": "/d/a.npz", "val_path": ""}}) == ["/d/a.npz"]
