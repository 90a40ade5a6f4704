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
    # here, not at the top: loads psutil only where this runs
    import psutil

    return psutil.Process().create_time()


def controller_marks(run: str) -> list:
    """The Train controller's marks for one run, as a RunConfig callback; none when marks are off."""
    if not os.environ.get(ENV):
        return []
    # here, not at the top: loads ray, pandas only where this runs
    from ray.train.v2._internal.execution.callback import ControllerCallback, WorkerGroupCallback

    class ControllerMarks(ControllerCallback, WorkerGroupCallback):
        """Splits "TorchTrainer start" into the controller's process and imports, its placement
        group and worker start, and the worker group ready (process group set up)."""

        def after_controller_start(self, train_run_context) -> None:
            mark("controller_started", run=run, t_process=process_started_at())

        def before_controller_execute_resize_decision(self, resize_decision) -> None:
            mark("worker_group_starting", run=run)

        def after_worker_group_start(self, worker_group) -> None:
            mark("worker_group_started", run=run)

    return [ControllerMarks()]
