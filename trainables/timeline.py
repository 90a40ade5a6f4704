"""Wall-clock marks of a trial's life, for benchmarks/trial_overhead.py.

Off unless the environment variable LOSSTUNE_TIMELINE names a file (workers inherit it from the
local Ray that the benchmark starts); each mark is then one JSON line appended to that file, so
processes on one machine write to it side by side. Costs one dict lookup when off.
"""

from __future__ import annotations

import json
import os
import time

ENV = "LOSSTUNE_TIMELINE"


def mark(event: str, **fields) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    line = json.dumps({"event": event, "t": time.time(), "pid": os.getpid(), **fields})
    with open(path, "a") as f:  # one short append per line: whole lines from concurrent writers
        f.write(line + "\n")


def process_started_at() -> float:
    """When this process was created (Unix time), from /proc via psutil (a Ray dependency)."""
    import psutil

    return psutil.Process().create_time()
