"""The installed project is one namespace, losstune.*, so that a folder of the user's named `data`,
`models` or `losses` (where a command runs, and first on the path of Ray's workers) cannot
stand in for ours."""

import ast
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("data", "models", "losses", "trainables", "search_spaces", "ray_jobs")


def imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module and not node.level}


def test_no_module_imports_the_projects_packages_by_their_bare_names():
    sources = [p for p in ROOT.rglob("*.py") if ".venv" not in p.parts and "build" not in p.parts]
    bare = {f"{path.relative_to(ROOT)}: {name}" for path in sources for name in imported_names(path)
            if name.split(".")[0] in PACKAGES}
    assert not bare


def test_the_project_points_to_nothing_outside_its_repository():
    # a user's clone has no seed documents beside it and no design file: the docs say in the
    # project's own words what each family implements (docs/families.md, by file and section)
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    texts = [ROOT / name for name in tracked if name.endswith((".py", ".md", ".cfg", ".toml", ".yaml", "Makefile"))
             and not name.startswith("tests/")]
    outside = [f"{path.relative_to(ROOT)}:{k}" for path in texts if path.is_file()
               for k, line in enumerate(path.read_text().splitlines(), 1) if "../shared" in line or 'DESIGN "' in line]
    assert not outside


def test_the_six_commands_are_installed_console_scripts():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts") if e.name.startswith("losstune-")}
    assert scripts == {"losstune-sweep": "losstune.ray_jobs.sweep:main", "losstune-train": "losstune.ray_jobs.train:main",
                       "losstune-analyze": "losstune.ray_jobs.analyze:main", "losstune-confirm": "losstune.ray_jobs.confirm:main",
                       "losstune-compare": "losstune.ray_jobs.compare:main",
                       "losstune-generate": "losstune.ray_jobs.generate:main"}


def folder_of_lookalikes(folder: Path) -> Path:
    """A user's project with packages named like ours, which fail loudly when imported."""
    for name in ("data", "models", "losses"):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name} package')\n")
    return folder


def test_list_runs_from_a_folder_with_its_own_data_package(tmp_path):
    folder = folder_of_lookalikes(tmp_path / "project")
    run = subprocess.run([sys.executable, "-m", "losstune.ray_jobs.sweep", "--list"], cwd=folder,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "hdr_patch: objective" in run.stdout


@pytest.mark.integration
def test_a_sweep_runs_from_a_folder_with_its_own_data_package(tmp_path):
    # Ray's workers put the driver's folder first on their path: the trial imports there too
    folder = folder_of_lookalikes(tmp_path / "project")
    sweep = Path(sys.executable).parent / "losstune-sweep"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.run([str(sweep), "--confirm-top", "0", "--smoke-test", "--trials", "1", "--epochs", "1",
                          "--scheduler", "none", "--storage", "results", "--name", "here", "-q"], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert (folder / "results" / "here" / "trials.parquet").exists()
