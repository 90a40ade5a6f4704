"""A trial whose one training worker is the trial's own process: Ray Train V2's local mode (a
TorchTrainer with ScalingConfig(num_workers=0) runs the loop in the calling process), the loop
reporting each epoch and its checkpoint to Tune, which persists the checkpoint in the trial's
folder, keeps the best (tune.RunConfig's checkpoint_config) and hands a restarted trial its latest.

What the worker group gave and how it is kept here: a lost worker is a lost trial process, which
Tune restarts from the trial's latest checkpoint (tune.FailureConfig); TensorBoard events are
written by this process before Tune has the report (ASHA may stop the trial once it has it); GPUs
are the trial's own (Ray sets CUDA_VISIBLE_DEVICES for the trial's process); PBT's exploit hands a
trial another trial's latest Tune checkpoint (ray_jobs/search/population.py), which the session tells from
the trial's own by the run each checkpoint records as its writer. Inside Tune,
ray.train.get_context() and get_checkpoint() are refused in local mode: the loop uses ray.tune's.
"""

from __future__ import annotations

import contextlib
import functools

import ray
import ray.train
import ray.tune
from ray.train.torch import TorchTrainer

from losstune.trainables.family_api import Family
from losstune.trainables.engine.loop import train
from losstune.trainables.engine.ray_session import as_folder
from losstune.trainables.engine.session import continued_run, trial_of
from losstune.trainables.engine.shipped_data import ShippedData
from losstune.trainables.engine.tensorboard import EpochEvents

WRITER = "run"  # the checkpoint's metadata key naming the run that saved it


class TuneTrialSession:
    """The loop's session inside a Tune trial's own process. Its run is the trial's, or, once PBT
    has made the trial continue a donor's checkpoint, named by the trial and that checkpoint
    (trainables.engine.session.continued_run), so that each epoch's "run" records the trial's lineage."""

    world_size = 1

    def __init__(self, trial_id: str, events: EpochEvents):
        self.node = ray.get_runtime_context().get_node_id()  # whole: `ray list nodes` names it so
        self._events = events
        self._checkpoint = ray.tune.get_checkpoint()
        # a checkpoint saved before runs recorded their writer is the trial's own
        writer = self._checkpoint.get_metadata().get(WRITER, "") if self._checkpoint is not None else ""
        self._donated = bool(writer) and trial_of(writer) != trial_id
        self.run_name = (continued_run(trial_id, writer, self._checkpoint.path) if self._donated
                         else writer or trial_id)

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None:
        # TensorBoard first: once Tune has the report, ASHA may stop the trial and end this process
        self._events.write(metrics)
        checkpoint = None
        if checkpoint_dir is not None:
            checkpoint = ray.tune.Checkpoint.from_directory(checkpoint_dir)
            checkpoint.set_metadata({WRITER: self.run_name})
        # Copies the checkpoint to storage before it returns. Where a scheduler stopped the trial
        # and Tune reuses this process for another, it raises SystemExit(0) here, Tune's way of
        # ending the trial's thread: nothing in the loop or in Train's local mode catches it.
        ray.tune.report(metrics, checkpoint=checkpoint)

    def latest_checkpoint(self):
        return contextlib.nullcontext(None) if self._donated else as_folder(self._checkpoint)

    def donor_checkpoint(self):
        return as_folder(self._checkpoint) if self._donated else contextlib.nullcontext(None)


def train_in_trial(family: Family, trial_id: str, events: EpochEvents, shipped: ShippedData, overrides: dict) -> None:
    train(family, shipped.localised(overrides), TuneTrialSession(trial_id, events))


def train_in_trial_process(family: Family, overrides: dict, trial_id: str, events: EpochEvents,
                           shipped: ShippedData = ShippedData()) -> None:
    """The family's loop on `overrides` in this Tune trial's process, through Train's local mode;
    the files `shipped` carries read from this node's copy."""
    trainer = TorchTrainer(functools.partial(train_in_trial, family, trial_id, events, shipped), train_loop_config=overrides,
                           scaling_config=ray.train.ScalingConfig(num_workers=0),
                           run_config=ray.train.RunConfig(name=trial_id))
    trainer.fit()
