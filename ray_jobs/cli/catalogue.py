"""What the CLIs can run, printed by their --list and --print-config FAMILY flags."""

from __future__ import annotations

import json

from losstune.trainables.config import documented_fields
from losstune.trainables.registry import family_names, load_family


def catalogue() -> str:
    """Every family with its objective, its search spaces (and what each tunes) and its presets."""
    # here, not at the top: loads ray, optuna, pandas only where this runs
    from losstune.search_spaces import sample_points

    lines = []
    for name in family_names():
        family = load_family(name)
        lines.append(f"{name}: objective {family.objective.metric} ({family.objective.mode})")
        for space_name in family.spaces:
            space = family.space(space_name, family.space_config(space_name))
            tuned = dict.fromkeys(key for point in sample_points(space, 16) for key in point)
            marker = " (default)" if space_name == family.default_space else ""
            if space_name in family.space_presets:
                marker += f" (with --preset {family.space_presets[space_name]} or another that it fits)"
            lines.append(f"  --space {space_name}{marker}: {', '.join(k.replace('/', '.') for k in tuned)}")
        lines.append(f"  --preset: {', '.join(family.presets) or '(none)'}")
    lines.append("every key of a family, its default and its seed section: --print-config FAMILY")
    return "\n".join(lines)


def config_listing(name: str) -> str:
    """Every config key of a family (what --set takes), its default and the seed section it comes
    from, one per line."""
    rows = documented_fields(load_family(name).config_class())
    width = max(len(key) for key, _, _ in rows)
    lines = [f"{name}: every key --set takes, its default, and where the default comes from"]
    for key, value, note in rows:
        shown = json.dumps(list(value) if isinstance(value, tuple) else value)
        lines.append(f"  {key:<{width}}  {shown:<14}  {note}".rstrip())
    return "\n".join(lines)
