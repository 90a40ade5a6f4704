"""Ray Train's side of the loop's session (trainables/engine/session.py): what a TorchTrainer runs on
every worker, and the Session it gives the loop. The one place the loop meets Ray Train."""

from __future__ import annotations

import contextlib
import functools

import ray
import ray.train

from losstune.trainables.family_api import Family
from losstune.trainables.engine.loop import train
from losstune.trainables.engine.shipped_data import ShippedData


class RayTrainSession:
    """The loop's session inside a Ray Train worker: its context, ray.train.report with a
    Checkpoint made from the loop's folder, and ray.train.get_checkpoint."""

    def __init__(self, start_from=None):
        context = ray.train.get_context()
        self.world_size = context.get_world_size()
        self.run_name = context.get_experiment_name()
        self.node = ray.get_runtime_context().get_node_id()  # whole: `ray list nodes` names it so
        self._start_from = start_from

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir is not None else None
        ray.train.report(metrics, checkpoint=checkpoint)

    def latest_checkpoint(self):
        return as_folder(ray.train.get_checkpoint())

    def donor_checkpoint(self):
        return as_folder(self._start_from)


def as_folder(checkpoint):
    """A ray.train.Checkpoint as a local folder for the time of a `with`, or None."""
    return checkpoint.as_directory() if checkpoint is not None else contextlib.nullcontext(None)


def train_in_ray(family: Family, overrides: dict, start_from=None, shipped: ShippedData = ShippedData()) -> None:
    """The loop on a Ray Train worker, starting from `start_from` (another run's
    ray.train.Checkpoint: a PBT exploit) where the run has no checkpoint of its own."""
    train(family, shipped.localised(overrides), RayTrainSession(start_from))


def train_loop(family: Family, start_from=None, shipped: ShippedData = ShippedData()):
    """What a TorchTrainer runs on every worker: the loop for this family, with one argument, the
    run's config overrides, as Ray Train calls it; the files `shipped` carries read from the
    worker's node copy."""
    return functools.partial(train_in_ray, family, start_from=start_from, shipped=shipped)
