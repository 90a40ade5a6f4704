"""losstune-compare's CONFIG arguments (default, a preset, presets joined by +, a JSON file, each
optionally LABEL=) and its per-config --set LABEL:KEY=VALUE, made into confirmation candidates,
each checked as a whole config and against its data before Ray starts."""

from __future__ import annotations

import argparse
import math
import os

from losstune.ray_jobs.cli.flags import flag_overrides, parse_set, read_config_file
from losstune.ray_jobs.confirmation.verdicts import Candidate
from losstune.ray_jobs.core.usage import UsageError
from losstune.trainables.config import ConfigError, flatten, merge, to_dict
from losstune.trainables.family_api import check_batches_fit, checked_data, make_config


def labelled(family, specs: list[str]) -> dict[str, tuple[str, dict]]:
    """{label: (spec, overrides)} for each CONFIG; UsageError naming the one that is none."""
    found = {}
    for given in specs:
        label, spec = "", given
        if "=" in given and not os.path.exists(given):  # LABEL=CONFIG
            label, spec = given.split("=", 1)
            if not label.strip():
                raise UsageError(f"CONFIG {given!r}: the label before '=' is empty")
        label, overrides = config_of(family, spec, label)
        if label in found:  # two configs one label: --set LABEL: and the results could not tell them apart
            raise UsageError(f"CONFIG: two configs are labelled {label!r} ({found[label][0]} and {spec}); label them "
                             f"apart, e.g. {spec.removesuffix('.json')}2={spec} (the same config twice, an A/A "
                             "check, takes a label too)")
        found[label] = (spec, overrides)
    if len(found) < 2:
        raise UsageError(f"CONFIG: give at least 2 configs to compare, got {len(found)}")
    return found


def config_of(family, spec: str, label: str) -> tuple[str, dict]:
    """(label, overrides) of one CONFIG: default, a preset, presets joined by + (later ones win), or
    a JSON file; the label is the one given (LABEL=SPEC), else the spec or the file's name."""
    if spec.endswith(".json") or os.path.sep in spec or os.path.exists(spec):
        try:
            return label or os.path.splitext(os.path.basename(spec))[0], read_config_file(spec)
        except UsageError as err:
            raise UsageError(f"CONFIG {str(err).removeprefix('--config: ')}") from None
    overrides = {}
    for name in spec.split("+"):
        if name not in ("default", *family.presets):
            raise UsageError(f"CONFIG: {name!r} is not 'default', a preset of {family.name} "
                             f"({', '.join(sorted(family.presets)) or 'none'}) or a JSON config file")
        overrides = merge(overrides, family.presets.get(name, {}))
    return label or spec, overrides


def changes(items: list[str], labels) -> tuple[dict, dict]:
    """--set's items: (for every config, {label: for that one})."""
    shared, own = [], {label: [] for label in labels}
    for item in items:
        key = item.partition("=")[0]
        label, colon, _ = key.partition(":")
        if not colon:
            shared.append(item)
        elif label not in own:
            raise UsageError(f"--set: {item!r} names {label!r}, not one of the configs ({', '.join(own)})")
        else:
            own[label].append(item.split(":", 1)[1])
    return parse_set(shared), {label: parse_set(kept) for label, kept in own.items()}


def common_overrides(family, args) -> dict:
    """What every config gets on top of its own: smoke-test sizes, epochs, data (later ones win)."""
    common = dict(family.smoke) if args.smoke_test else {}
    # --epochs and --data as every command reads them; --set is per config here (changes)
    return merge(common, flag_overrides(argparse.Namespace(**{**vars(args), "set": []})))


def build_candidates(family, args) -> list[Candidate]:
    """The configs as confirmation candidates, each checked as a whole config and against its
    data before Ray starts; all must train as long and be ranked by the same objective."""
    configs = labelled(family, args.configs)
    shared, own = changes(args.set, configs)
    chosen, seen = [], {}
    for label, (spec, overrides) in configs.items():
        full = merge(merge(merge(overrides, common_overrides(family, args)), shared), own[label])
        try:
            config = make_config(family, full)
        except ConfigError as err:
            where = f"{spec} (not a {family.name} config?)" if spec.endswith(".json") else spec
            raise UsageError(f"CONFIG {where}: {err}") from None
        seen[label] = (config.train.epochs, family.objective_of(config))
        check_batches_fit(checked_data(family, config), {f"config {label}": config.train.batch_size})
        # the whole effective config (as a best_config.json holds it): what each config sets differently
        # from the reference is then exact, whatever preset or file it came from
        chosen.append(Candidate(label, "", math.nan, flatten(to_dict(config))))
    if len({epochs for epochs, _ in seen.values()}) > 1:
        raise UsageError(f"--epochs: the configs train for different epochs "
                         f"({', '.join(f'{k} {e}' for k, (e, _) in seen.items())}); give --epochs to compare them")
    if len({objective.metric for _, objective in seen.values()}) > 1:
        raise UsageError("CONFIG: the configs are ranked by different objectives "
                         f"({', '.join(f'{k} {o.metric}' for k, (_, o) in seen.items())}); compare like with like")
    return chosen
