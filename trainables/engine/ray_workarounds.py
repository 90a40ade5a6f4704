"""Where Ray 2.60 needs working around, each with the failure it prevents, on Ray's internal APIs
where it must: a Ray upgrade starts here (and at trainables/engine/timeline.py's benchmark marks, which
use Train's controller callbacks). Tested in tests/trainables/test_ray_workarounds*.py."""

from __future__ import annotations

import os
import time

import ray
from ray.train.v2._internal.execution.callback import ControllerCallback
from ray.train._internal.session import get_session
from ray.train._internal.storage import _FilesystemSyncer


TRAIN_POLL_INTERVAL_S = "0.25"


def poll_train_workers_often() -> None:
    """Ray Train's controller polls its workers every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (default
    2 s), and a worker's `ray.train.report` waits until the previous report was polled: at 2 s
    that costs ~1 s per epoch and up to 2 s at each trial's end. Train propagates the variable to
    the controller it starts from this process; a value the user set wins."""
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", TRAIN_POLL_INTERVAL_S)


# How long a finished trial waits for Tune to take its last report: longer than Tune's driver is
# ever busy between two results, short enough that a trial Tune no longer polls still ends.
LAST_REPORT_TIMEOUT_S = 120.0


# After the queue is seen empty: the moment between Tune's thread taking the report off the queue
# and handing it on (a few statements, well under a millisecond), with room to spare.
LAST_REPORT_GRACE_S = 0.1


def wait_until_tune_took_the_last_report(timeout_s: float = LAST_REPORT_TIMEOUT_S,
                                         poll_s: float = 0.05) -> None:
    """Keeps the trial function from returning before Tune has taken the last Train report.

    TuneReportCallback (in Train's controller) puts each report on a one-item Ray queue, which the
    trial actor's main thread empties when Tune asks for the next result and then passes on through
    the session's one-item result queue. When the trial function returns, Tune's wrapper puts its
    end-of-trial marker on that same result queue. In Ray 2.60, if Tune asks for the last result
    only after `fit()` has returned (its driver busy for the ~1 s fit() takes to return after the
    last report), the main thread takes the last report from the Ray queue, finds the result queue
    full with the marker that only it could empty, and waits forever: the trial stays RUNNING with
    its last epoch missing (seen in CI: a 3-trial sweep on a loaded 2-node cluster; reproduced by a
    trial function that puts two reports and returns at once). Waiting here until the Ray queue is
    empty orders the two.
    """
    queue = get_session()._get_or_create_inter_actor_queue()  # the one TuneReportCallback holds
    deadline = time.monotonic() + timeout_s
    while not queue.empty():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Tune did not take the trial's last report within {timeout_s:.0f} s")
        time.sleep(poll_s)
    time.sleep(LAST_REPORT_GRACE_S)


class NoRestartWithoutDriver(ControllerCallback):
    """Refuses to restart a trial's worker group once the trial's driver is gone.

    When Tune stops a trial (ASHA, a stopper), the trial's driver actor exits and Ray kills what
    it owns: the Train controller and, through it, the training worker. The worker often dies
    first; the controller, still running for a few milliseconds, takes that for a worker crash,
    and with retries left (max_failures) it reserves a new placement group for a new worker.
    Train registers a group with its PlacementGroupCleaner only once the workers have started,
    which they never do here, so nothing frees the new group's CPUs: two such groups stalled a
    30-trial ASHA sweep on 2 CPUs (every later trial timed out waiting for a worker). The first
    start is the driver's own fit(); before any later one this asks Ray's state API whether the driver
    is alive, and raises instead of reserving CPUs for a trial that has ended.
    """

    def __init__(self, driver_actor_id: str | None):
        self.driver_actor_id = driver_actor_id  # None outside an actor: nothing to watch
        self._starts = 0

    def before_controller_execute_resize_decision(self, resize_decision) -> None:
        self._starts += 1
        if self._starts > 1 and self.driver_actor_id and not driver_alive(self.driver_actor_id):
            raise RuntimeError(f"trial driver {self.driver_actor_id} has exited: not restarting its worker group")


def driver_alive(actor_id: str) -> bool:
    """Whether an actor is alive by the GCS's actor table; True when the table cannot be read (a
    restart Train would have made anyway beats a trial failed on a state-API hiccup)."""
    # here, not at the top: loads ray only where this runs
    from ray.util.state import get_actor
    from ray.util.state.exception import RayStateApiException

    try:
        # this Ray's address, not the lookup by machine that fails beside a second Ray
        actor = get_actor(actor_id, address=ray.get_runtime_context().gcs_address, timeout=5)
    except RayStateApiException:
        return True
    return actor is not None and actor.state != "DEAD"


def without_an_idle_dataset_manager(trainer):
    """Leaves Ray Train's DatasetsCallback out of a trainer given no Ray Datasets.

    Ray 2.60's DataParallelTrainer adds DatasetsCallback to every run, and that callback starts a
    DatasetManager actor for every run, datasets or not: one more process per trial, which imports
    Ray Train and Ray Data (1.6 s of CPU in a fresh interpreter here) while the trial's worker
    imports torch on the same cores. The families read their data in the training function, so
    the actor would serve nothing. A trainer with datasets keeps the callback."""
    # here, not at the top: loads ray only where this runs
    from ray.train.v2._internal.callbacks.datasets import DatasetsCallback

    if trainer.datasets:
        return trainer
    ray_defaults = trainer._create_default_callbacks
    trainer._create_default_callbacks = lambda: [callback for callback in ray_defaults()
                                                 if not isinstance(callback, DatasetsCallback)]
    return trainer


# Tune's searchers and its experiment state are written to a temporary file (".<uuid>-tmp-<name>")
# that is then renamed into place (ray.tune.utils.util._atomic_save, Searcher.save_to_dir).
TEMPORARY_STATE_FILES = ".*-tmp-*"


def no_temporary_files_in_experiment_sync() -> None:
    """Tune uploads the driver's experiment folder to storage in a background thread while its next
    snapshot writes a temporary state file and renames it: a file listed, then gone, failed the
    upload with a 20-line FileNotFoundError traceback and "ERROR ... Saving experiment state to
    storage ... failed" (`make demo`'s confirmation, 2026-11-29; the state itself was saved by the
    next sync). Every sync up from this process leaves those temporary files out (Ray 2.60's
    `_FilesystemSyncer`, the syncer of every storage Tune writes to)."""
    command = _FilesystemSyncer._sync_up_command
    if getattr(command, "skips_temporary_files", False):
        return

    def sync_up_command(self, local_path: str, uri: str, exclude=None):
        return command(self, local_path, uri, exclude=[*(exclude or []), TEMPORARY_STATE_FILES])

    sync_up_command.skips_temporary_files = True
    _FilesystemSyncer._sync_up_command = sync_up_command
