"""What the CLIs can run, printed by their --list and --print-config FAMILY flags."""

from __future__ import annotations

import json

from losstune.trainables.config import documented_fields
from losstune.trainables.families import FAMILIES, family_module, spaces_module, spaces_of


def catalogue() -> str:
    """Every family with its objective, its search spaces (and what each tunes) and its presets."""
    from losstune.search_spaces import sample_points

    lines = []
    for name in FAMILIES:
        family, default_space = family_module(name), spaces_module(name).DEFAULT_SPACE
        lines.append(f"{name}: objective {family.OBJECTIVE.metric} ({family.OBJECTIVE.mode})")
        for space_name, space in spaces_of(name).items():
            tuned = dict.fromkeys(key for point in sample_points(space, 16) for key in point)
            marker = " (default)" if space_name == default_space else ""
            lines.append(f"  --space {space_name}{marker}: {', '.join(k.replace('/', '.') for k in tuned)}")
        lines.append(f"  --preset: {', '.join(family.PRESETS) or '(none)'}")
    lines.append("every key of a family, its default and its seed section: --print-config FAMILY")
    return "\n".join(lines)


def config_listing(name: str) -> str:
    """Every config key of a family (what --set takes), its default and the seed section it comes
    from, one per line."""
    family = family_module(name)
    rows = documented_fields(family.Config())
    width = max(len(key) for key, _, _ in rows)
    lines = [f"{name}: every key --set takes, its default, and where the default comes from"]
    for key, value, note in rows:
        shown = json.dumps(list(value) if isinstance(value, tuple) else value)
        lines.append(f"  {key:<{width}}  {shown:<14}  {note}".rstrip())
    return "\n".join(lines)
