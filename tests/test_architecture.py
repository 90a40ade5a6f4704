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


ORDER = ("core", "results", "search", "confirmation", "reports", "cli", "")  # "": the six commands


def ray_jobs_imports() -> set[tuple[str, str]]:
    """(importing module, imported module) within ray_jobs, as "package.module" ("module" for a
    command), module-level and local imports alike."""
    import ast

    root = ROOT / "ray_jobs"
    name = lambda path: ".".join(path.relative_to(root).with_suffix("").parts)  # noqa: E731
    modules = {name(p) for p in root.rglob("*.py") if p.stem != "__init__"}
    edges = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("losstune.ray_jobs"):
                base = node.module.removeprefix("losstune.ray_jobs").lstrip(".")
                for alias in node.names:
                    target = f"{base}.{alias.name}".lstrip(".")
                    edges.add((name(path), target if target in modules else base))
    return {(a, b) for a, b in edges if b in modules and a != b}


def test_ray_jobs_packages_import_in_one_direction():
    package = lambda module: module.split(".")[0] if "." in module else ""  # noqa: E731
    upward = sorted(f"{a} -> {b}" for a, b in ray_jobs_imports() if ORDER.index(package(a)) < ORDER.index(package(b)))
    assert not upward, "an import against the order core < results < search < confirmation < reports < cli < commands"


def test_ray_jobs_modules_import_without_cycles():
    from graphlib import CycleError, TopologicalSorter

    graph = {}
    for importer, imported in ray_jobs_imports():
        graph.setdefault(importer, set()).add(imported)
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"an import cycle: {err.args[1]}") from None


def test_a_search_space_reads_its_family_through_the_config_it_is_given():
    # search_spaces/medgen_* imported family internals (DCAE_VARIANTS from shapes, matched_width from
    # denoisers); a space may use only what its `config` argument offers
    import ast

    reached = sorted(f"{path.name}: {node.module}" for path in (ROOT / "search_spaces").glob("*.py")
                     for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("losstune.trainables.families"))
    assert not reached
