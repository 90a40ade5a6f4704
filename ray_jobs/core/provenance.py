"""Where a sweep's numbers come from, saved beside them (losstune_sweep.json) and shown in its
report: the command line, the package versions, the project's git commit (and whether its tree had
changes), the machine, and a content hash of each data file the sweep read."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib import metadata
from losstune.trainables.registry import family_package

PACKAGES = ("torch", "ray", "optuna", "monai", "accelerate", "scipy")
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def provenance(argv: list[str], data_paths: list[str], family: str = "") -> dict:
    """The record; `family` from another installed package adds that package and its version."""
    record = {"command": " ".join(argv), "python": platform.python_version(),
              "packages": {name: package_version(name) for name in PACKAGES},
              "git": git_state(REPOSITORY), "machine": machine(),
              "data": {path: content_hash(path) for path in data_paths} or "synthetic"}
    plugin = family_package(family) if family else None
    return record | ({"family_package": plugin} if plugin else {})


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_state(folder: str) -> dict:
    """{"commit", "dirty"} of the checkout the code runs from; {} where it is not one (an installed
    copy, a `ray job submit --working-dir` upload without .git)."""
    def git(*args):
        return subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode:
            return {}
        return {"commit": head.stdout.strip(), "dirty": bool(git("status", "--porcelain").stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {}


def machine() -> dict:
    # here, not at the top: loads torch only where this runs
    import torch

    gpus = [torch.cuda.get_device_name(k) for k in range(torch.cuda.device_count())]
    return {"host": platform.node(), "cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
            "gpus": gpus}


def content_hash(path: str) -> str:
    """sha256 of a file's bytes, or of a folder's files (their relative paths and bytes, in sorted
    order), so that the same data gives the same hash wherever it lies."""
    digest = hashlib.sha256()
    if os.path.isdir(path):
        files = sorted(os.path.relpath(os.path.join(root, name), path)
                       for root, _, names in os.walk(path) for name in names)
        for name in files:
            digest.update(name.encode())
            add_file(digest, os.path.join(path, name))
    else:
        add_file(digest, path)
    return f"sha256:{digest.hexdigest()}"


def add_file(digest, path: str) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)


def data_paths(base: dict) -> list[str]:
    """The data files a sweep's config names (data.path, data.val_path); none for synthetic data."""
    data = base.get("data", {})
    return [data[key] for key in ("path", "val_path") if data.get(key)]


def summary(record: dict) -> str:
    """One line of the report."""
    git = record.get("git") or {}
    commit = (f"{git['commit'][:10]}{' (with uncommitted changes)' if git.get('dirty') else ''}" if git
              else "not a git checkout")
    packages = ", ".join(f"{k} {v}" for k, v in record.get("packages", {}).items())
    if plugin := record.get("family_package"):
        packages += f", the family's package {plugin['package']} {plugin['version']}"
    data = record.get("data")
    data = "synthetic" if data == "synthetic" else "; ".join(f"{p} {h[:19]}" for p, h in data.items())
    return (f"provenance: commit {commit}; Python {record.get('python')}, {packages}; {record['machine']['cpus']} CPUs"
            f"{', ' + ', '.join(record['machine']['gpus']) if record['machine']['gpus'] else ', no GPU'}; data: {data}")
