"""TensorBoard files of a run: one event per epoch, the seed's tags, the HParams of a trial (and
the sweep's HParams experiment, written once by the driver).

Written by the trial's own process where its loop runs there (trainables/engine/tune_session.py), or by
Ray Train's controller through `TensorBoardCallback` where a worker group trains it."""

from __future__ import annotations

import logging
import os
import time
from typing import Mapping

from ray.train.v2.api.callback import UserCallback
from ray.tune import Callback

from losstune.trainables.config import flatten
import tempfile


def hparams_of(point: dict, seed: int) -> tuple:
    """The HParams plugin's session-start summary of a run: its sampled point (flat names) and the
    seed it trains at. The parameters and metrics TensorBoard compares runs by are declared once
    per sweep (`experiment_summary`), so that every run's row shows every parameter of the space."""
    # here, not at the top: loads torch, tensorboardX only where this runs
    from tensorboardX.summary import hparams

    flat = {name: value if isinstance(value, (bool, int, float, str)) else str(value)
            for name, value in flatten(point).items()}
    _, session_start, _ = hparams({**flat, SEED_PARAM: seed}, {})
    return (session_start,)


SEED_PARAM = "train/seed"  # a confirmation's runs differ by it


def experiment_summary(distributions: Mapping, metric_tags: list[str]):
    """The HParams experiment of a sweep: every parameter its space can sample (Optuna
    distributions by flat name, each with its domain), the training seed, and the metrics' tags.
    TensorBoard takes the first experiment it finds and otherwise the first run's parameters."""
    # here, not at the top: loads torch, tensorboardX only where this runs
    from tensorboardX.proto.api_pb2 import DataType, Experiment, HParamInfo, Interval, MetricInfo, MetricName
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

    def info(name, distribution) -> HParamInfo:
        choices = getattr(distribution, "choices", None)
        if choices is None:
            return HParamInfo(name=name, type=DataType.DATA_TYPE_FLOAT64,
                              domain_interval=Interval(min_value=distribution.low, max_value=distribution.high))
        if all(isinstance(c, bool) for c in choices):
            kind, values = "DATA_TYPE_BOOL", list(choices)
        elif all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices):
            kind, values = "DATA_TYPE_FLOAT64", [float(c) for c in choices]
        else:  # strings, or a mix (None, lists): shown as text, as hparams_of writes such values
            kind, values = "DATA_TYPE_STRING", [c if isinstance(c, str) else str(c) for c in choices]
        parameter = HParamInfo(name=name, type=DataType.Value(kind))
        parameter.domain_discrete.extend(values)
        return parameter

    parameters = [info(name, distributions[name]) for name in sorted(distributions)]
    parameters.append(HParamInfo(name=SEED_PARAM, type=DataType.DATA_TYPE_FLOAT64))
    experiment = Experiment(hparam_infos=parameters, metric_infos=[MetricInfo(name=MetricName(tag=tag))
                                                                   for tag in metric_tags])
    content = HParamsPluginData(experiment=experiment, version=0).SerializeToString()
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="hparams", content=content))
    return Summary(value=[Summary.Value(tag="_hparams_/experiment", metadata=metadata)])


def event_file_bytes(summaries: list) -> tuple[str, bytes]:
    """(file name, contents) of an event file that holds `summaries`: for a file written to a
    sweep's storage, which may be a cloud URI."""
    # here, not at the top: loads torch, tensorboardX only where this runs
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto.event_pb2 import Event

    with tempfile.TemporaryDirectory() as folder:
        events = EventsWriter(os.path.join(folder, "events"), filename_suffix=".hparams")
        for summary in summaries:
            events.write_event(Event(wall_time=time.time(), step=0, summary=summary))
        events.close()
        (name,) = os.listdir(folder)
        with open(os.path.join(folder, name), "rb") as f:
            return name, f.read()


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
        self.hparams = hparams  # the run's HParams session start, written before the first epoch
        self._events = None

    def write(self, metrics: dict) -> None:
        # here, not at the top: loads torch, tensorboardX only where this runs
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


class SessionEnds(Callback):
    """How each trial ended, as TensorBoard's HParams plugin reads it: every run showed
    STATUS_UNKNOWN, so trials ASHA stopped at epoch 1 looked like finished ones. Written by the
    sweep's driver (a trial's process is killed when it is stopped) as one more event file in the
    trial's folder in storage: STATUS_SUCCESS for a trial that ran every epoch healthy,
    STATUS_FAILURE for one that errored or a health check stopped; one a scheduler stopped early
    stays STATUS_UNKNOWN (the plugin has no status for it)."""

    def __init__(self, full_length: int):
        self.full_length = full_length

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.write(trial, self.status(trial.last_result, failed=False))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.write(trial, self.status(trial.last_result, failed=True))

    def status(self, result: dict | None, failed: bool) -> str:
        result = result or {}
        if failed or result.get("stop_reason"):
            return "STATUS_FAILURE"
        if result.get("epoch", self.full_length) < self.full_length:
            return "STATUS_UNKNOWN"
        return "STATUS_SUCCESS"

    @staticmethod
    def write(trial, status: str) -> None:
        """The session end event, into the trial's folder in its storage (local or an object store)."""
        name, contents = event_file_bytes([session_end(status)])
        fs, folder = trial.storage.storage_filesystem, trial.storage.trial_fs_path
        try:  # a trial that failed before its folder was made gets one; a store that fails costs the status only
            fs.create_dir(folder, recursive=True)
            with fs.open_output_stream(f"{folder}/{name}.end") as out:
                out.write(contents)
        except OSError as err:
            logging.getLogger(__name__).warning("TensorBoard session end of %s not written: %s", trial, err)


def session_end(status: str):
    """The HParams plugin's session-end summary with `status` (tensorboardX writes only SUCCESS)."""
    # here, not at the top: loads torch, tensorboardX only where this runs
    from tensorboardX.proto.api_pb2 import Status
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

    end = SessionEndInfo(status=Status.Value(status), end_time_secs=time.time())
    content = HParamsPluginData(session_end_info=end, version=0).SerializeToString()
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="hparams", content=content))
    return Summary(value=[Summary.Value(tag="_hparams_/session_end_info", metadata=metadata)])
