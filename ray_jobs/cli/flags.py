"""The command-line pieces every entry point shares: --help's layout, --list / --print-config,
-q / -v, --set and the other config flags, and the checks that refuse a bad flag in one line
(UsageError) before Ray starts."""

from __future__ import annotations

import argparse
import json
import os
import threading

from losstune.ray_jobs.cli.bounds import check_folder_name, check_regular_file, check_upper_bounds
from losstune.ray_jobs.cli.catalogue import catalogue, config_listing
from losstune.ray_jobs.core.storage import check_writable, exists
from losstune.ray_jobs.core.usage import AUTO, MAX_NESTING, UsageError, nesting, read_json_file
from losstune.trainables.config import merge, unflatten
from losstune.trainables.registry import family_names


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a bad flag said in one line (its error printed the whole usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (--help lists the flags)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help: the module's docstring as written (its first line the command), and each flag's
    default where it has one (shared with ray_jobs/train.py)."""

    def _get_help_string(self, action):
        text = action.help or ""
        worth_saying = action.default not in (None, False, "", [], argparse.SUPPRESS) and action.nargs != 0
        if worth_saying and "%(default)" not in text and (action.option_strings or action.nargs == "?"):
            text += " (default: %(default)s)"
        return text


def not_empty(text: str) -> str:
    """A flag's text that must say something: '' (an unset shell variable, `--data "$DATA"`) is
    refused, not read as "not given" (--data '' trained on the embedded synthetic data)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty (an unset shell variable?); leave the flag out for its default")
    return text


STORAGE_TIMEOUT_S = 20  # how long --storage has to answer its first question
RAY_RESOLUTION = 1e-4  # Ray rounds a resource share to 4 decimals: a smaller one is 0 to its scheduler


def add_catalogue_flags(parser: argparse.ArgumentParser) -> None:
    """--list and --print-config FAMILY: what can be run, then exit (shared with ray_jobs/train.py)."""
    parser.add_argument("--list", action="store_true", help="list the families, their search spaces (and what "
                                                            "each tunes) and presets, then exit")
    # nargs "?": `--print-config FAMILY` and `FAMILY --print-config` alike (const: the positional FAMILY)
    parser.add_argument("--print-config", metavar="FAMILY", nargs="?", const=True, choices=family_names(),
                        help="print every config key of FAMILY (what --set takes), its default and its seed "
                             "section, then exit")


def print_catalogue(args) -> bool:
    """Print what --list or --print-config asked for; whether they did."""
    if args.list:
        print(catalogue())
    elif args.print_config:
        print(config_listing(args.family if args.print_config is True else args.print_config))
    return bool(args.list or args.print_config)


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    """-q / -v: how much the console shows (shared with ray_jobs/train.py)."""
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true",
                          help="only the start line, errors and the final report")
    loudness.add_argument("-v", "--verbose", action="count", default=0,
                          help="-v: also a line for every trial's start, result and end; -vv: and the training "
                               "workers' own logs")


def add_min_effect(parser: argparse.ArgumentParser) -> None:
    """--min-effect: what a confirmation's verdict counts as a difference (shared by sweep, confirm, compare)."""
    parser.add_argument("--min-effect", metavar="DELTA",
                        help="the smallest difference to the default that matters: absolute in the objective's units "
                             "(0.02) or relative to the default's mean (1%%). 'beats' needs the 95%% interval beyond it, "
                             "'equivalent' inside +/- it (default: the family's objective's, 1%% unless it says)")


def seeds_flag(text: str) -> int | str:
    """--seeds / --confirm-seeds: a count, or auto."""
    if text == AUTO:
        return AUTO
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seeds or auto, got {text!r}") from None


def add_seeds(parser: argparse.ArgumentParser, flag: str = "--seeds") -> None:
    """--seeds N or auto, and --max-seeds (shared by sweep, confirm, compare)."""
    parser.add_argument(flag, type=seeds_flag, default=5,
                        help="training seeds per config (at least 2), or auto: 3, then 2 more at a time for the "
                             "configs not yet decided, until every one is (group-sequential: the error rates of a "
                             "fixed number) or --max-seeds is reached")
    parser.add_argument("--max-seeds", type=int, default=20, help=f"the most seeds {flag} auto runs")


def check_seeds(flag: str, seeds: int | str, max_seeds: int) -> None:
    """A count at least 2, or auto with --max-seeds at least 3 (its first look); both at most 1000."""
    if seeds == AUTO:
        check_at_least(("--max-seeds", max_seeds, 3))
        check_upper_bounds(("--max-seeds", max_seeds, 1000))
    else:
        check_at_least((flag, seeds, 2))
        check_upper_bounds((flag, seeds, 1000))


def check_min_effect(text: str | None) -> None:
    from losstune.ray_jobs.confirmation.stats import parse_min_effect  # here: scipy, which most commands never need

    if text is not None:
        try:
            parse_min_effect(text)
        except ValueError as err:
            raise UsageError(f"--min-effect: {err}") from None


def verbosity(args) -> int:
    """0 quiet, 1 default (a progress table of the objective and the tuned parameters), 2 -v, 3 -vv."""
    return 0 if args.quiet else 1 + min(args.verbose, 2)


def parse_set(items: list[str]) -> dict:
    """--set a.b=1 -> {'a': {'b': 1}}; values are JSON where they parse, else strings."""
    flat = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            flat[key] = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            flat[key] = raw
        if nesting(flat[key]) > MAX_NESTING:
            raise UsageError(f"--set: {key}: nested more than {MAX_NESTING} levels deep")
    return unflatten(flat, ".")


def flag_overrides(args) -> dict:
    """The config overrides given as flags: --set, --epochs, --data (shared with ray_jobs/train.py)."""
    overrides = parse_set(args.set)
    if args.epochs:
        overrides = merge(overrides, {"train": {"epochs": args.epochs}})
    if args.data:
        overrides = merge(overrides, {"data": {"path": os.path.abspath(args.data)}})
    return overrides


def read_config_file(path: str) -> dict:
    """--config: a JSON object of config sections (a sweep's best_config.json); UsageError naming
    the flag and file where it cannot be read or is not one. Its keys are checked where the config
    is built."""
    check_regular_file("--config", path)
    overrides = read_json_file("--config", path)
    if not isinstance(overrides, dict):
        raise UsageError(f"--config: {path} must hold a JSON object of config sections, got {type(overrides).__name__}")
    return overrides


def check_at_least(*checks: tuple[str, float | None, float]) -> None:
    """Each (flag, value, low): a flag that was given must be >= low (shared with ray_jobs/train.py,
    so that a bad count fails here, before Ray starts, and not inside a trial)."""
    for flag, value, low in checks:
        if value is not None and value < low:
            raise UsageError(f"{flag}: must be >= {low}, got {value}")


def check_name(flag: str, name: str | None) -> None:
    """A run or sweep name is one folder inside --storage: no path separators, no '..', not blank
    (--name ' ' made a folder named by one space)."""
    if name is not None and (not name.strip() or "/" in name or "\\" in name or name in (".", "..")):
        raise UsageError(f"{flag}: must be a plain folder name inside --storage, got {name!r}")
    check_folder_name(flag, name)


def check_worker_shares(cpus: float | None, gpus: float) -> None:
    """A worker needs some CPU (Ray refuses an empty bundle) and no negative GPU share; a share Ray
    would round to 0 is refused (1e-9 CPU failed inside Tune: "Tracked actor is not managed")."""
    if cpus is not None and cpus < RAY_RESOLUTION:
        raise UsageError(f"--cpus-per-worker: must be at least {RAY_RESOLUTION:g} (Ray's resolution), got {cpus:g}")
    check_at_least(("--gpus-per-worker", gpus, 0))
    if 0 < gpus < RAY_RESOLUTION:
        raise UsageError(f"--gpus-per-worker: must be 0 or at least {RAY_RESOLUTION:g} (Ray's resolution), got {gpus:g}")


def check_storage_answers(storage: str) -> None:
    """--storage can be read: an object store that does not answer, or refuses the credentials, is
    one line here, before anything asks it whether a sweep exists."""
    answer = {}

    def ask():
        try:
            answer["exists"] = exists(storage)
        except (OSError, ValueError) as err:  # pyarrow's errors from object stores (ArrowInvalid a ValueError)
            answer["error"] = err

    # in a thread of its own, bounded: GCS without credentials retried for minutes (a daemon
    # thread, so that a store still not answering does not hold the process at exit)
    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    asking.join(STORAGE_TIMEOUT_S)
    if asking.is_alive():
        raise UsageError(f"--storage: {storage} did not answer in {STORAGE_TIMEOUT_S} s (credentials? network?)")
    if "error" in answer:
        why = (str(answer["error"]).splitlines() or [type(answer["error"]).__name__])[0]
        raise UsageError(f"--storage: cannot read {storage}: {why}")


def check_storage(storage: str) -> None:
    """--storage can be written, checked before Ray starts (a read-only folder, a full disk, an
    unreachable bucket would otherwise fail inside Tune, hundreds of lines later)."""
    try:
        check_writable(storage)
    except Exception as err:  # OSError from disks, pyarrow's errors from object stores
        raise UsageError(f"--storage: cannot write to {storage}: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
