"""Families from another installed package (trainables/registry.py): an entry point in the group
`losstune.families`, no edit to losstune."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from losstune.trainables import registry

TOY = Path(__file__).resolve().parents[2] / "examples" / "toy.py"  # the example family, losstune.examples.toy


@pytest.fixture
def toy_package_installed(tmp_path):
    """The example family (examples/toy.py) as a package of its own, installed into this
    environment with pip (offline, from its folder), registered by its entry point alone; removed
    after the test."""
    package = tmp_path / "losstune-toy-family"
    package.mkdir()
    (package / "losstune_toy_family.py").write_text(TOY.read_text())
    (package / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "losstune-toy-family"
        version = "0.1"

        [project.entry-points."losstune.families"]
        toy = "losstune_toy_family"

        [tool.setuptools]
        py-modules = ["losstune_toy_family"]
    """))
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--no-index", "--no-deps", "--no-build-isolation", str(package)], check=True,
                   capture_output=True, timeout=300)
    registry.installed.cache_clear()  # this process read the installed packages before the install
    try:
        yield
    finally:
        subprocess.run([*pip, "uninstall", "-y", "losstune-toy-family"], check=True, capture_output=True, timeout=300)
        registry._resolved.cache_clear()
        registry.installed.cache_clear()


@pytest.fixture
def packages_read_anew():
    """The installed packages read again by the test's first question, and after it (a test that
    changes what entry_points returns must not leave its answer cached)."""
    registry.installed.cache_clear()
    yield
    registry.installed.cache_clear()


@pytest.mark.integration  # its runs train in Ray's processes, which must import the installed package
def test_a_family_from_another_package_is_listed_swept_confirmed_and_compared(local_ray, toy_package_installed,
                                                                               tmp_path, capsys):
    from losstune.ray_jobs import compare
    from losstune.ray_jobs import sweep
    from losstune.ray_jobs.cli.catalogue import catalogue

    assert "toy" in registry.family_names() and registry.load_family("toy").objective.metric == "val/mse"
    assert "toy: objective val/mse (min)" in catalogue()
    assert sweep.main(["--print-config", "toy"]) == 0 and "loss.weights.mse" in capsys.readouterr().out
    code = sweep.main(["toy", "--trials", "2", "--scheduler", "none", "--confirm-top", "1", "--confirm-seeds", "2",
                       "--storage", str(tmp_path), "--name", "toy", "-q"])
    assert code == 0
    trials = pd.read_parquet(tmp_path / "toy" / "trials.parquet")
    assert len(trials) == 2 and (trials["status"] == "COMPLETED").all()
    # the family's package and version in the sweep's provenance (losstune's commit does not say it)
    saved = json.loads((tmp_path / "toy" / "losstune_sweep.json").read_text())["provenance"]
    assert saved["family_package"] == {"package": "losstune-toy-family", "version": "0.1"}
    assert trials["final/val/mse"].notna().all() and trials["is_default"].sum() == 1
    runs = pd.read_parquet(tmp_path / "toy" / "confirm_top1_seeds2" / "confirm.parquet")
    assert len(runs) == 4 and (runs["status"] == "COMPLETED").all()
    assert compare.main(["toy", "default", "strong", "--seeds", "2", "--storage", str(tmp_path), "--name", "cmp",
                         "-q"]) == 0
    compared = pd.read_parquet(tmp_path / "cmp" / "compare_seeds2" / "confirm.parquet")
    assert sorted(compared["config_id"].unique()) == ["default", "strong"]
    # a family whose every trial fails (here at its first step, as one whose Config lacks what the loop
    # needs): exit 1 with the first error in one line, and the trials table and report written
    capsys.readouterr()
    assert sweep.main(["toy", "--trials", "2", "--set", "data.fail=true", "--storage", str(tmp_path), "--name", "bad",
                       "-q"]) == 1
    assert "sweep: bad: every trial failed: RuntimeError: toy: data.fail is set; exit 1" in capsys.readouterr().err
    failed = pd.read_parquet(tmp_path / "bad" / "trials.parquet")
    assert len(failed) == 2 and (failed["status"] == "ERROR").all()
    assert "every trial failed" in (tmp_path / "bad" / "report.html").read_text()


def test_a_registered_family_cannot_take_a_built_in_ones_name(monkeypatch, packages_read_anew):
    class EntryPoint:
        name, value = "hdr_patch", "someone_elses.hdr_patch"

    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda group: [EntryPoint()])
    with pytest.warns(UserWarning, match="family 'hdr_patch' of someone_elses.hdr_patch ignored"):
        assert registry.registered()["hdr_patch"] == registry.FAMILIES["hdr_patch"]


def test_a_built_in_family_loads_without_reading_the_installed_packages_and_another_name_reads_them(
        monkeypatch, packages_read_anew):
    # Reading every installed package's entry points took ~25 ms a call; a test that loaded a
    # family per sampled point spent 58 of its 60 s there. A built-in name never needs them.
    read = []

    class EntryPoint:
        name, value = "elsewhere", "losstune.trainables.families.hdr_patch"

    real = registry.importlib.metadata.entry_points

    def entry_points(group):  # other groups (torch's backends, on its first import) as they are
        if group != registry.ENTRY_POINT_GROUP:
            return real(group=group)
        read.append(group)
        return [EntryPoint()]

    monkeypatch.setattr(registry.importlib.metadata, "entry_points", entry_points)
    assert registry.load_family("hdr_patch").name == "hdr_patch" and read == []
    with pytest.raises(registry.ConfigError, match="is unknown: 'nothing'.*elsewhere"):
        registry.load_family("nothing")
    assert "elsewhere" in registry.family_names() and read == ["losstune.families"]  # read once per process
