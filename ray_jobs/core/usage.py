"""What a bad command line raises, and the readers of a flag's value that every layer shares: a
flag's number, a JSON file a flag names. Below every other package of ray_jobs, so that a check
anywhere can refuse in one line (UsageError) without importing the command line's parsers."""

from __future__ import annotations

import argparse
import json
import math

AUTO = "auto"  # --seeds auto: add seeds until every config is decided (ray_jobs/confirmation/sequential.py)


class UsageError(Exception):
    """A bad flag or state; the message names it."""


def finite_float(text: str) -> float:
    """A flag's number: NaN and infinity refused here (a NaN share of a CPU hung Ray's scheduler)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


MAX_NESTING = 16  # a config's sections nest 2-4 deep: far deeper is not a config (and recursed past Python's limit)


def read_json_file(flag: str, path: str):
    """A JSON file a flag names; UsageError naming both where it cannot be read, is not JSON, or
    nests deeper than MAX_NESTING (a RecursionError traceback before)."""
    try:
        with open(path) as f:
            value = json.load(f)
    except OSError as err:
        raise UsageError(f"{flag}: {path}: {err}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        why = "nested too deep to read" if isinstance(err, RecursionError) else err
        raise UsageError(f"{flag}: {path}: not a JSON file ({why})") from None
    if nesting(value) > MAX_NESTING:
        raise UsageError(f"{flag}: {path}: nested more than {MAX_NESTING} levels deep; a config's sections nest 2-4")
    return value


def nesting(value, depth: int = 0) -> int:
    """How deep lists and objects nest in a JSON value (stops counting past MAX_NESTING)."""
    if depth > MAX_NESTING or not isinstance(value, (dict, list)):
        return depth
    children = value.values() if isinstance(value, dict) else value
    return max((nesting(child, depth + 1) for child in children), default=depth + 1)
