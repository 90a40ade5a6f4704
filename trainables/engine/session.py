"""The loop's one door to whatever runs it: rank, world size, report(metrics, checkpoint), the
latest checkpoint and the run's name: the loop never imports Ray. Inside a trial Ray Train's
session is used (trainables/engine/ray_session.py); `LocalSession` runs a family's loop in this process,
for tests and notebooks, with no Ray at all:

    from losstune.trainables.registry import load_family
    from losstune.trainables.engine.loop import train
    from losstune.trainables.engine.session import LocalSession

    session = LocalSession()
    train(load_family("hdr_patch"), {"train": {"epochs": 2}}, session)
    session.reports[-1]["val/log_l1"], session.checkpoints[-1]

The loop, its checkpoints and its worker set-up import nothing from Ray: only this seam knows who
is on the other side.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import ContextManager, Protocol


class Session(Protocol):
    world_size: int  # training workers of the run (DDP ranks)
    run_name: str  # the run's name: a trial's Train run, recorded per epoch (a PBT trial's lineage)
    node: str  # where this worker runs, for placement checks

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None:
        """Report an epoch's metrics, with the checkpoint saved in `checkpoint_dir` (a folder the
        loop deletes once this returns: the session keeps its own copy)."""

    def latest_checkpoint(self) -> ContextManager[str | None]:
        """This run's own latest checkpoint as a local folder, or None: a restarted run resumes there."""

    def donor_checkpoint(self) -> ContextManager[str | None]:
        """Another run's checkpoint this run starts from (PBT's exploit), or None."""


class LocalSession:
    """A run in this process alone: its reports in `reports`, its checkpoints copied into `folder`
    (a fresh temporary one by default) and listed in `checkpoints`. A second `train` with the same
    session resumes from the last checkpoint, as a restarted trial does."""

    world_size = 1
    node = "local"

    def __init__(self, folder: str | None = None, run_name: str = "local", donor: str | None = None):
        self.folder = folder or tempfile.mkdtemp(prefix="losstune-run-")
        self.run_name = run_name
        self.donor = donor
        self.reports: list[dict] = []
        self.checkpointed: list[bool] = []  # per report: whether a checkpoint came with it
        self.checkpoints: list[str] = []

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None:
        self.reports.append(dict(metrics))
        self.checkpointed.append(checkpoint_dir is not None)
        if checkpoint_dir is not None:
            kept = os.path.join(self.folder, f"checkpoint_{len(self.checkpoints):06d}")
            shutil.copytree(checkpoint_dir, kept)
            self.checkpoints.append(kept)

    def latest_checkpoint(self) -> ContextManager[str | None]:
        return contextlib.nullcontext(self.checkpoints[-1] if self.checkpoints else None)

    def donor_checkpoint(self) -> ContextManager[str | None]:
        return contextlib.nullcontext(self.donor)


def continued_run(trial_id: str, donor_run: str, checkpoint_path: str) -> str:
    """The run of a trial that continues the checkpoint at `checkpoint_path` of another trial's run."""
    return f"{trial_id}-from-{trial_of(donor_run)}-{checkpoint_path.rstrip('/').split('/')[-1]}"


def trial_of(run: str) -> str:
    """The trial whose run this is (a continued run's name begins with its trial's id)."""
    return run.split("-from-")[0]
