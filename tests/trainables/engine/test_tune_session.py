"""A one-worker trial's loop in its own process (trainables/engine/tune_session.py): a TorchTrainer in Ray
Train V2's local mode runs the loop here, reporting and checkpointing through Tune's function API.
Tune's side (ray.tune.report, get_checkpoint) is replaced by a recorder, so the test needs no Ray;
a real Tune trial runs it in tests/ray_jobs/test_sweep_integration.py (a killed trial process
resumes from its checkpoint) and test_multinode_integration.py."""

import os
import shutil
import types

import pytest
import ray
import ray.tune
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from losstune.trainables.config import merge
from losstune.trainables.registry import load_family
from losstune.trainables.engine.tensorboard import EpochEvents
from losstune.trainables.engine.tune_session import train_in_trial_process

from tests.trainables.smoke_runs import smoke_config


class FakeTune:
    """Tune's function API as a trial sees it: report persists the checkpoint (a copy, as Tune's
    storage does before report returns), get_checkpoint gives the trial's latest on a restart."""

    def __init__(self, folder):
        self.folder = folder
        self.reports, self.checkpoints = [], []
        self.restored = None

    def report(self, metrics, checkpoint=None):
        self.reports.append(dict(metrics))
        if checkpoint is not None:
            kept = os.path.join(self.folder, f"checkpoint_{len(self.checkpoints):06d}")
            shutil.copytree(checkpoint.path, kept)
            self.checkpoints.append(kept)

    def get_checkpoint(self):
        return self.restored


@pytest.fixture
def fake_tune(tmp_path, monkeypatch):
    tune = FakeTune(str(tmp_path / "trial"))
    monkeypatch.setattr(ray.tune, "report", tune.report)
    monkeypatch.setattr(ray.tune, "get_checkpoint", tune.get_checkpoint)
    monkeypatch.setattr(ray, "get_runtime_context", lambda: types.SimpleNamespace(get_node_id=lambda: "n" * 24))
    return tune


def test_a_trial_reports_each_epoch_to_tune_with_its_checkpoint_and_tensorboard_event(tmp_path, fake_tune):
    family = load_family("hdr_patch")
    config = merge(smoke_config("hdr_patch"), {"train": {"epochs": 2, "checkpoint_every": 1}})
    train_in_trial_process(family, config, "trial_a", EpochEvents(str(tmp_path / "trial"), family.tags))
    assert [r["epoch"] for r in fake_tune.reports] == [1, 2]
    assert {r["run"] for r in fake_tune.reports} == {"trial_a"} and fake_tune.reports[0]["node"] == "n" * 24
    assert len(fake_tune.checkpoints) == 2  # every epoch, as train.checkpoint_every asks
    events = EventAccumulator(str(tmp_path / "trial"))
    events.Reload()
    assert [e.step for e in events.Scalars(family.tags.get("val/log_l1", "val/log_l1"))] == [1, 2]


def test_a_restarted_trial_resumes_from_the_checkpoint_tune_gives_it(tmp_path, fake_tune, inject_faults):
    # the trial process dies in epoch 3; Tune starts the trial again with its latest checkpoint (epoch 2)
    family = load_family("hdr_patch")
    config = merge(smoke_config("hdr_patch"), {"train": {"epochs": 4, "checkpoint_every": 1}})
    inject_faults(crash_at_epoch=3)
    events = EpochEvents(str(tmp_path / "trial"), family.tags)
    with pytest.raises(RuntimeError, match="injected crash"):
        train_in_trial_process(family, config, "trial_b", events)
    assert [r["epoch"] for r in fake_tune.reports] == [1, 2]
    fake_tune.restored = ray.tune.Checkpoint.from_directory(fake_tune.checkpoints[-1])
    train_in_trial_process(family, config, "trial_b", events)
    assert [r["epoch"] for r in fake_tune.reports] == [1, 2, 3, 4]  # no epoch twice, none skipped
    assert [r["restarts"] for r in fake_tune.reports] == [0, 0, 1, 1]


def test_pbts_exploit_continues_the_donors_checkpoint_as_a_run_of_its_own(tmp_path, fake_tune, inject_faults):
    # PBT hands trial_c trial_a's latest Tune checkpoint (epoch 2) with trial_c's own config; the
    # session tells it from trial_c's own by the run each checkpoint records as its writer.
    family = load_family("hdr_patch")
    config = merge(smoke_config("hdr_patch"), {"train": {"epochs": 4, "checkpoint_every": 1},
                                               "schedule": {"kind": "constant", "warmup_frac": 0.0}})
    events = EpochEvents(str(tmp_path / "trial"), family.tags)
    train_in_trial_process(family, merge(config, {"train": {"epochs": 2}, "optim": {"lr": 1e-3}}), "trial_a", events)
    donor = fake_tune.checkpoints[-1]
    assert ray.tune.Checkpoint(donor).get_metadata() == {"run": "trial_a"}
    fake_tune.reports.clear()
    fake_tune.restored = ray.tune.Checkpoint(donor)
    inject_faults(crash_at_epoch=4)
    with pytest.raises(RuntimeError, match="injected crash"):
        train_in_trial_process(family, merge(config, {"optim": {"lr": 5e-4}}), "trial_c", events)
    continued = "trial_c-from-trial_a-checkpoint_000001"
    assert [(r["epoch"], r["run"], r["restarts"]) for r in fake_tune.reports] == [(3, continued, 0)]
    assert fake_tune.reports[0]["lr"] == pytest.approx(5e-4)  # its own rate, not the donor's 1e-3
    # the trial process dies in epoch 4: Tune restarts it from its own latest checkpoint, written by the continued run
    fake_tune.restored = ray.tune.Checkpoint(fake_tune.checkpoints[-1])
    assert fake_tune.restored.get_metadata() == {"run": continued}
    train_in_trial_process(family, merge(config, {"optim": {"lr": 5e-4}}), "trial_c", events)
    assert [(r["epoch"], r["run"], r["restarts"]) for r in fake_tune.reports] == [(3, continued, 0), (4, continued, 1)]
