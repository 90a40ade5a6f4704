"""A run's checkpoints: what the loop saves with a report through Ray Train, and how a restarted
run resumes from the latest one."""

from __future__ import annotations

import json
import os
import tempfile

import ray.train

from losstune.trainables.config import to_dict
from losstune.trainables.continued import load_donor_state
from losstune.trainables.timeline import mark

STATE_FILE = "losstune_state.json"


def report_epoch(accelerator, history: list[dict], cfg, epoch: int, restarts: int, family: str) -> None:
    """Report an epoch's metrics (the last of `history`) to Ray Train, with a checkpoint every
    train.checkpoint_every epochs and at the run's last epoch (its end or an early stop), so a
    restarted trial resumes from there."""
    metrics = history[-1]
    last = epoch + 1 == cfg.train.epochs or bool(metrics["stop_reason"])
    every = cfg.train.checkpoint_every
    if last or (every and (epoch + 1) % every == 0):
        with tempfile.TemporaryDirectory() as tmp:
            save(accelerator, tmp, epoch + 1, restarts, history, {"family": family, "config": to_dict(cfg)})
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report(metrics)
    mark("reported", epoch=epoch + 1)


def save(accelerator, directory: str, epochs_done: int, restarts: int, history: list[dict],
         identity: dict | None = None) -> None:
    """Model, optimizer, scheduler, RNG (and grad scaler) through Accelerate, plus the epoch, the
    metrics reported with it, every epoch's metrics so far (`history`, from which the results
    rebuild a trial whose reports Tune lost: ray_jobs.stored_runs.stored_history), and the run's
    family and whole config (`identity`), from which the model can be built again elsewhere (a
    compression checkpoint under latent diffusion: trainables/latent_space.py)."""
    accelerator.save_state(directory)
    if accelerator.is_main_process:
        with open(os.path.join(directory, STATE_FILE), "w") as f:
            json.dump({"epochs_done": epochs_done, "restarts": restarts, "metrics": history[-1], "history": history,
                       **(identity or {})}, f, default=float)


def restore(accelerator, start_from=None) -> tuple[int, int, list[dict], bool]:
    """Load this run's latest reported checkpoint if it has one, else `start_from` (another run's
    checkpoint, which a PBT trial continues: trainables/continued.py), if given.

    Returns (epoch to start at, restarts so far, the metrics of every epoch up to it, whether the
    state is another run's): a run that resumes has been restarted once more than the checkpoint
    it resumes from, so lost workers and nodes are counted in the metrics; a run that continues
    another's starts its own count, and its history begins with the donor's epochs."""
    own = ray.train.get_checkpoint()
    checkpoint = own or start_from
    if checkpoint is None:
        return 0, 0, [], False
    continued = own is None
    with checkpoint.as_directory() as directory:
        if continued:
            load_donor_state(accelerator, directory)  # this run's schedules stay: adopt_config rebuilds them
        else:
            accelerator.load_state(directory)
        with open(os.path.join(directory, STATE_FILE)) as f:
            state = json.load(f)
    history = state.get("history") or ([state["metrics"]] if state.get("metrics") else [])  # older checkpoints
    if continued:
        mark("continued", epoch=state["epochs_done"])
        return state["epochs_done"], 0, history, True
    return state["epochs_done"], state.get("restarts", 0) + 1, history, False
