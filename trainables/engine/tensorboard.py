"""TensorBoard files of a run: one event per epoch, the seed's tags, the HParams of a trial.

Written by the trial's own process where its loop runs there (trainables/engine/tune_session.py), or by
Ray Train's controller through `TensorBoardCallback` where a worker group trains it."""

from __future__ import annotations

import os
import time
from typing import Mapping

from ray.train.v2.api.callback import UserCallback

from losstune.trainables.config import flatten


def hparams_of(config: dict, objective_tag: str) -> tuple:
    """The HParams plugin's experiment and session-start summaries of a trial: its sampled config
    (flat names) and the objective's scalar tag, whose epochs TensorBoard reads as the metric, so
    that its HParams table and parallel-coordinates view compare the trials."""
    from tensorboardX.summary import hparams

    flat = {name: value if isinstance(value, (bool, int, float, str)) else str(value)
            for name, value in flatten(config).items()}
    experiment, session_start, _ = hparams(flat, {objective_tag: 0.0})
    return experiment, session_start


class EpochEvents:
    """A TensorBoard event file written one epoch at a time, on disk when `write` returns; a metric
    the family's TAGS name is written under its seed's tag (seed 001's `Loss/MSE_val` for the loop's
    `val/mse`), so the seed's dashboards read it.

    tensorboardX's SummaryWriter hands events to a background thread and writes them on close();
    a trial's process is killed when the trial ends or ASHA stops it, and nothing closes the writer:
    over 20 real-data trials, 13 event files lost their last epoch and one was empty.
    tensorboardX's EventsWriter is the same file format written in this thread."""

    def __init__(self, logdir: str, tags: Mapping[str, str], hparams: tuple = ()):
        self.logdir = logdir
        self.tags = dict(tags)
        self.hparams = hparams  # TensorBoard HParams summaries, written before the first epoch
        self._events = None

    def write(self, metrics: dict) -> None:
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary

        if self._events is None:
            os.makedirs(self.logdir, exist_ok=True)
            # the pid: a restarted trial's new process must not reuse its predecessor's file name
            self._events = EventsWriter(os.path.join(self.logdir, "events"), filename_suffix=f".{os.getpid()}")
            for summary in self.hparams:
                self._events.write_event(Event(wall_time=time.time(), step=0, summary=summary))
        scalars = [Summary.Value(tag=self.tags.get(name, name), simple_value=float(value)) for name, value in metrics.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)]
        self._events.write_event(Event(wall_time=time.time(), step=int(metrics.get("epoch", 0)),
                                       summary=Summary(value=scalars)))
        self._events.flush()


class TensorBoardCallback(UserCallback):
    """Ray Train's controller writing rank 0's metrics of every report as `EpochEvents`."""

    def __init__(self, logdir: str, tags: Mapping[str, str], hparams: tuple = ()):
        self.events = EpochEvents(logdir, tags, hparams)

    def after_report(self, run_context, metrics, checkpoint):
        self.events.write(metrics[0])
