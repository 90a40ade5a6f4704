"""docs/architecture.md is the project's map: every module of its packages is on it, and every
module it names exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ray_jobs", "trainables", "search_spaces", "models", "losses", "data", "examples")


def modules() -> set[str]:
    return {path.name for package in PACKAGES for path in (ROOT / package).rglob("*.py") if path.name != "__init__.py"}


def test_every_module_is_on_the_map_and_the_map_names_no_module_that_is_gone():
    page = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"\b([a-z_0-9]+\.py)\b", page))
    assert not sorted(modules() - named), "modules missing from docs/architecture.md"
    anywhere = {path.name for path in ROOT.rglob("*.py") if ".venv" not in path.parts}  # tests/... too
    assert not sorted(named - anywhere), "docs/architecture.md names modules that are gone"
