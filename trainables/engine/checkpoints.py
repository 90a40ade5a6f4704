"""A run's checkpoints: what the loop saves with a report through its session (Ray Train's in a
trial: trainables/engine/session.py), and how a restarted run resumes from the latest one."""

from __future__ import annotations

import json
import os
import tempfile

from losstune.trainables.config import to_dict
from losstune.trainables.engine.continued import load_donor_state
from losstune.trainables.engine.timeline import mark

STATE_FILE = "losstune_state.json"


def report_epoch(session, accelerator, history: list[dict], cfg, epoch: int, restarts: int, family: str) -> None:
    """Report an epoch's metrics (the last of `history`) to the session, with a checkpoint every
    train.checkpoint_every epochs and at the run's last epoch (its end or an early stop), so a
    restarted trial resumes from there."""
    metrics = history[-1]
    last = epoch + 1 == cfg.train.epochs or bool(metrics["stop_reason"])
    every = cfg.train.checkpoint_every
    if last or (every and (epoch + 1) % every == 0):
        with tempfile.TemporaryDirectory() as tmp:
            save(accelerator, tmp, epoch + 1, restarts, history, {"family": family, "config": to_dict(cfg)})
            session.report(metrics, checkpoint_dir=tmp)
    else:
        session.report(metrics)
    mark("reported", epoch=epoch + 1)


def save(accelerator, directory: str, epochs_done: int, restarts: int, history: list[dict],
         identity: dict | None = None) -> None:
    """Model, optimizer, scheduler, RNG (and grad scaler) through Accelerate, plus the epoch, the
    metrics reported with it, every epoch's metrics so far (`history`, from which the results
    rebuild a trial whose reports Tune lost: ray_jobs.results.stored_runs.stored_history), and the run's
    family and whole config (`identity`), from which the model can be built again elsewhere (a
    compression checkpoint under latent diffusion: trainables/families/medgen/latent_representation.py)."""
    accelerator.save_state(directory)
    if accelerator.is_main_process:
        with open(os.path.join(directory, STATE_FILE), "w") as f:
            json.dump({"epochs_done": epochs_done, "restarts": restarts, "metrics": history[-1], "history": history,
                       **(identity or {})}, f, default=float)


def restore(accelerator, session) -> tuple[int, int, list[dict], bool]:
    """Load this run's latest reported checkpoint if the session has one, else its donor's (another
    run's checkpoint, which a PBT trial continues: trainables/engine/continued.py), if it has one.

    Returns (epoch to start at, restarts so far, the metrics of every epoch up to it, whether the
    state is another run's): a run that resumes has been restarted once more than the checkpoint
    it resumes from, so lost workers and nodes are counted in the metrics; a run that continues
    another's starts its own count, and its history begins with the donor's epochs."""
    with session.latest_checkpoint() as own:
        if own is not None:
            accelerator.load_state(own)
            return resumed(read_state(own), continued=False)
    with session.donor_checkpoint() as donor:
        if donor is None:
            return 0, 0, [], False
        load_donor_state(accelerator, donor)  # this run's schedules stay: adopt_config rebuilds them
        return resumed(read_state(donor), continued=True)


def read_state(directory: str) -> dict:
    with open(os.path.join(directory, STATE_FILE)) as f:
        return json.load(f)


def resumed(state: dict, continued: bool) -> tuple[int, int, list[dict], bool]:
    history = state.get("history") or ([state["metrics"]] if state.get("metrics") else [])  # older checkpoints
    if continued:
        mark("continued", epoch=state["epochs_done"])
        return state["epochs_done"], 0, history, True
    return state["epochs_done"], state.get("restarts", 0) + 1, history, False
