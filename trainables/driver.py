"""The Tune function trainable: each trial builds and runs one TorchTrainer.

Ray 2.60 is Train V2: Tune no longer wraps a trainer; a trial's function starts the
TorchTrainer itself and `TuneReportCallback` forwards the workers' reports to Tune. The trial
function only waits on the trainer, so it holds a fraction of a CPU.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from dataclasses import dataclass

import ray.train
import ray.tune
from ray.train.torch import TorchTrainer
from ray.train.v2._internal.execution.callback import ControllerCallback
from ray.train.v2.api.callback import UserCallback
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils import flatten_dict

from losstune.trainables.config import merge
from losstune.trainables.family_api import CHECKPOINT_SCORE, Family
from losstune.trainables.timeline import controller_marks, mark, process_started_at


TRAIN_POLL_INTERVAL_S = "0.25"
CONTROLLER_FAILURE_LIMIT = 3  # each a 60 s worker-group start timeout


def poll_train_workers_often() -> None:
    """Ray Train's controller polls its workers every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (default
    2 s), and a worker's `ray.train.report` waits until the previous report was polled: at 2 s
    that costs ~1 s per epoch and up to 2 s at each trial's end. Train propagates the variable to
    the controller it starts from this process; a value the user set wins."""
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", TRAIN_POLL_INTERVAL_S)


@dataclass(frozen=True)
class TrialResources:
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    driver_cpus: float = 0.1
    # A custom resource the cluster gives its head node (cluster.yaml: losstune_driver): drivers
    # then hold one unit of it instead of CPU, so they sit on the head, not on GPU workers.
    driver_resource: str = ""

    def driver(self) -> dict:
        return {"CPU": 0.0, self.driver_resource: 1.0} if self.driver_resource else {"CPU": self.driver_cpus}

    def per_worker(self) -> dict:
        return {"CPU": self.cpus_per_worker, "GPU": self.gpus_per_worker}

    def per_trial(self) -> dict:
        need = {kind: self.workers * amount for kind, amount in self.per_worker().items()}
        for kind, amount in self.driver().items():
            need[kind] = need.get(kind, 0.0) + amount
        return need

    def scaling_config(self) -> ray.train.ScalingConfig:
        per_worker = {"CPU": self.cpus_per_worker}
        if self.gpus_per_worker:
            per_worker["GPU"] = self.gpus_per_worker
        return ray.train.ScalingConfig(num_workers=self.workers, use_gpu=self.gpus_per_worker > 0,
                                       resources_per_worker=per_worker)


def keep_checkpoints(family: Family, best: int | None) -> ray.train.CheckpointConfig:
    """Keep a run's latest checkpoint, which a restart resumes from (Ray Train never deletes it), and
    its `best` best by the family's objective (None: all), as seeds 000 and 001 keep
    checkpoint_best.pt beside checkpoint_latest.pt. An epoch that did not validate its own weights
    scores NaN (CHECKPOINT_SCORE), which Ray ranks below every number."""
    return ray.train.CheckpointConfig(num_to_keep=best, checkpoint_score_attribute=CHECKPOINT_SCORE,
                                      checkpoint_score_order=family.objective.mode)


def run_trial(config: dict, *, family: Family, base: dict, resources: TrialResources, runs_path: str,
              max_failures: int = 1, num_to_keep: int | None = 2) -> None:
    """One trial: the sweep's fixed overrides (`base`) under the trial's sampled `config`."""
    from losstune.trainables.loop import train_loop  # torch and Accelerate: only where a trial runs

    poll_train_workers_often()
    context = ray.tune.get_context()
    mark("driver_entered", run=context.get_trial_id(), t_process=process_started_at())
    trainer = TorchTrainer(
        train_loop(family),
        train_loop_config=merge(base, config),
        scaling_config=resources.scaling_config(),
        run_config=ray.train.RunConfig(
            # the same name on a restarted trial: Train resumes from the run's latest checkpoint
            name=context.get_trial_id(),
            storage_path=runs_path,
            # A worker group that cannot start (its CPU never frees up) is a controller failure,
            # which Train retries forever by default: fail the trial after a few, not the sweep.
            failure_config=ray.train.FailureConfig(max_failures=max_failures,
                                                   controller_failure_limit=CONTROLLER_FAILURE_LIMIT),
            checkpoint_config=keep_checkpoints(family, num_to_keep),
            callbacks=[TuneReportCallback(), TensorBoardCallback(context.get_trial_dir()),
                       NoRestartWithoutDriver(ray.get_runtime_context().get_actor_id()),
                       *controller_marks(context.get_trial_id())],
        ),
    )
    trainer.fit()
    mark("fit_returned", run=context.get_trial_id())
    wait_until_tune_took_the_last_report()


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
    from ray.train._internal.session import get_session

    queue = get_session()._get_or_create_inter_actor_queue()  # the one TuneReportCallback holds
    deadline = time.monotonic() + timeout_s
    while not queue.empty():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Tune did not take the trial's last report within {timeout_s:.0f} s")
        time.sleep(poll_s)
    time.sleep(LAST_REPORT_GRACE_S)


def trainable(family: Family, base: dict, resources: TrialResources, runs_path: str, **kwargs):
    """`run_trial` bound to one sweep, with the driver's fractional CPU."""
    bound = ray.tune.with_parameters(run_trial, family=family, base=base, resources=resources,
                                     runs_path=runs_path, **kwargs)
    return ray.tune.with_resources(bound, resources.driver())


class DiskGuard(ray.tune.Callback):
    """Stops the sweep as Ctrl-C does (Tune saves its state, the trials stay resumable) when a local
    --storage runs low, checked after every result and every trial error: written to the last
    byte, Tune's state and the trials' error files end truncated, and the sweep can be neither
    resumed nor read."""

    def __init__(self, storage: str, min_free_mb: float):
        self.folder = None if "://" in storage else storage
        self.min_free_mb = min_free_mb
        self.tripped = ""  # why it stopped the sweep

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.check()

    def on_trial_error(self, iteration, trials, trial, **info):  # e.g. a checkpoint that did not fit
        self.check()

    def check(self) -> None:
        if self.folder and not self.tripped:
            free_mb = shutil.disk_usage(self.folder).free / 2**20
            if free_mb < self.min_free_mb:
                self.stop(f"--storage {self.folder} has {free_mb:.1f} MB free (--min-free-mb {self.min_free_mb:g})")

    def stop(self, why: str) -> None:
        self.tripped = why
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's graceful stop, the one ray_jobs.sweep.CtrlC asks for


class TensorBoardCallback(UserCallback):
    """Writes rank 0's metrics of every report as TensorBoard scalars, under the same names, one
    event per epoch, on disk before `after_report` returns.

    tensorboardX's SummaryWriter hands events to a background thread and writes them on close();
    a trial's Train controller, where this runs, is killed when the trial ends or ASHA stops it,
    and nothing closes the writer: over 20 real-data trials, 13 event files lost their last epoch
    and one was empty. tensorboardX's EventsWriter is the same file format written in this thread.
    """

    def __init__(self, logdir: str):
        self.logdir = logdir
        self._events = None

    def after_report(self, run_context, metrics, checkpoint):
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary

        if self._events is None:
            os.makedirs(self.logdir, exist_ok=True)
            # the pid: a restarted trial's new controller must not reuse its predecessor's file name
            self._events = EventsWriter(os.path.join(self.logdir, "events"), filename_suffix=f".{os.getpid()}")
        values = metrics[0]
        scalars = [Summary.Value(tag=name, simple_value=float(value)) for name, value in values.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)]
        self._events.write_event(Event(wall_time=time.time(), step=int(values.get("epoch", 0)),
                                       summary=Summary(value=scalars)))
        self._events.flush()


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
    from ray.util.state import get_actor
    from ray.util.state.exception import RayStateApiException

    try:
        # this Ray's address, not the lookup by machine that fails beside a second Ray
        actor = get_actor(actor_id, address=ray.get_runtime_context().gcs_address, timeout=5)
    except RayStateApiException:
        return True
    return actor is not None and actor.state != "DEAD"


class HealthAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna FAIL for a trial that errored or stopped unhealthy, and
    PRUNED for one a scheduler stopped before `full_length` epochs.

    Ray's OptunaSearch records a trial that errored after reporting as COMPLETE with its last
    value, so a diverged trial could become the study's best; a trial that ended with a
    `stop_reason` (non-finite loss, overflow, ...) is no valid sample of the objective either.
    It also records an ASHA-stopped trial as COMPLETE with its value at the epoch it was stopped,
    which TPE then ranks against full-length trials as if it were final. Pruned, Optuna keeps its
    reported epochs (intermediate values) and TPE ranks it behind the trials that ran to the end.
    (Multi-objective studies take no intermediate values; there the stopped trial stays COMPLETE.)
    """

    def __init__(self, *args, full_length: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.full_length = full_length

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        result = result or {}
        if error or result.get("stop_reason"):
            return super().on_trial_complete(trial_id, result=None, error=True)
        stopped_early = self.full_length and result.get("epoch", self.full_length) < self.full_length
        if stopped_early and not isinstance(self.metric, list):
            return super().on_trial_complete(trial_id, result=None, error=False)  # Ray: PRUNED
        return super().on_trial_complete(trial_id, result=result or None, error=error)


class DefaultKeepingASHA(AsyncHyperBandScheduler):
    """ASHA that never stops the documented-default trial.

    Every sweep must answer "did we beat the documented setting?"; an ASHA stop of the default at
    an early rung would compare the best trial's last epoch with the default's second one.
    """

    def __init__(self, default_point: dict, **kwargs):
        super().__init__(**kwargs)
        self._default_point = default_point

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if flatten_dict(trial.config, delimiter="/") == self._default_point:
            return TrialScheduler.CONTINUE
        return decision
