"""A trial whose one training worker is the trial's own process: Ray Train V2's local mode (a
TorchTrainer with ScalingConfig(num_workers=0) runs the loop in the calling process), the loop
reporting each epoch and its checkpoint to Tune, which persists the checkpoint in the trial's
folder, keeps the best (tune.RunConfig's checkpoint_config) and hands a restarted trial its latest.

What the worker group gave and how it is kept here: a lost worker is a lost trial process, which
Tune restarts from the trial's latest checkpoint (tune.FailureConfig); TensorBoard events are
written by this process before Tune has the report (ASHA may stop the trial once it has it); GPUs
are the trial's own (Ray sets CUDA_VISIBLE_DEVICES for the trial's process). Inside Tune,
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
from losstune.trainables.loop import train
from losstune.trainables.ray_session import as_folder
from losstune.trainables.tensorboard import EpochEvents


class TuneTrialSession:
    """The loop's session inside a Tune trial's own process."""

    world_size = 1

    def __init__(self, run_name: str, events: EpochEvents):
        self.run_name = run_name
        self.node = ray.get_runtime_context().get_node_id()[:12]
        self._events = events

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None:
        # TensorBoard first: once Tune has the report, ASHA may stop the trial and end this process
        self._events.write(metrics)
        checkpoint = ray.tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir is not None else None
        ray.tune.report(metrics, checkpoint=checkpoint)  # copies the checkpoint to storage before it returns

    def latest_checkpoint(self):
        return as_folder(ray.tune.get_checkpoint())

    def donor_checkpoint(self):
        # PBT and PB2 trials train in a worker group (TrialResources.in_trial_process)
        return contextlib.nullcontext(None)


def train_in_trial(family: Family, run_name: str, events: EpochEvents, overrides: dict) -> None:
    train(family, overrides, TuneTrialSession(run_name, events))


def train_in_trial_process(family: Family, overrides: dict, run_name: str, events: EpochEvents) -> None:
    """The family's loop on `overrides` in this Tune trial's process, through Train's local mode."""
    trainer = TorchTrainer(functools.partial(train_in_trial, family, run_name, events), train_loop_config=overrides,
                           scaling_config=ray.train.ScalingConfig(num_workers=0),
                           run_config=ray.train.RunConfig(name=run_name))
    trainer.fit()
