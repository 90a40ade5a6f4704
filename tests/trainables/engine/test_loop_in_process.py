"""Every family's run through the shared loop in this process (trainables/engine/session.py's
LocalSession, no Ray): it reports the documented metrics and a checkpoint every epoch, resumes
from its last checkpoint after a crash (both optimiser groups' step counts, the EMA, the plateau),
validates every n epochs, and a finished run started again reports its end once more. These ran
through a TorchTrainer before, 20-40 s of Ray Train's process start-up each; what only real
processes can show (a worker lost and its trial restarted by Ray, DDP) stays in
test_loop_integration.py."""

import os

import pytest

from losstune.trainables.config import merge
from losstune.trainables.registry import FAMILIES, load_family
from losstune.trainables.engine.loop import train
from losstune.trainables.engine.session import LocalSession

from tests.trainables.smoke_runs import DOCUMENTED, OPTIMISER_OPTIONS, RESUME_FAMILIES, smoke_config, term_names


def run(family: str, config: dict, session: LocalSession, restarts: int = 0) -> LocalSession:
    """train() in this process; an injected crash restarts it from the session's latest checkpoint
    up to `restarts` times, as Ray Train's FailureConfig restarts a lost worker."""
    for attempt in range(restarts + 1):
        try:
            train(load_family(family), config, session)
            return session
        except RuntimeError as err:
            if "injected crash" not in str(err) or attempt == restarts:
                raise
    return session


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_run_reports_every_metric_and_a_checkpoint_and_resumes_from_it(tmp_path, family, inject_faults):
    module = load_family(family)
    resumes = family in RESUME_FAMILIES
    epochs = 3 if resumes else 2
    if resumes:
        inject_faults(crash_at_epoch=3)
    config = merge(smoke_config(family), {"train": {"epochs": epochs, "checkpoint_every": 1}})
    session = run(family, config, LocalSession(str(tmp_path)), restarts=1)
    metrics = session.reports[-1]
    expected = DOCUMENTED + [module.objective.metric] + [f"health/{n}" for n in module.watched_val_metrics]
    missing = [name for name in expected if name not in metrics]
    assert not missing, missing
    for term in term_names(family, config):
        assert f"train/{term}" in metrics and f"train/weighted/{term}" in metrics
    assert metrics["epoch"] == epochs and metrics["stop_reason"] == ""
    # with the crash: epochs 1-2, then the restarted run continues at 3 (starting over would repeat 1, 2)
    assert [r["epoch"] for r in session.reports] == list(range(1, epochs + 1)) and all(session.checkpointed)
    assert metrics["restarts"] == (1 if resumes else 0)
    latest = session.checkpoints[-1]
    files = os.listdir(latest)
    assert "losstune_state.json" in files and any(f.startswith("model") for f in files)
    assert any(f.startswith("optimizer") for f in files) and any(f.startswith("scheduler") for f in files)
    if family == "medgen_compression":  # both optimisers continued: each has stepped for all 3 epochs
        import torch

        steps = [{float(s["step"]) for s in torch.load(os.path.join(latest, name), weights_only=False)["state"].values()}
                 for name in ("optimizer.bin", "optimizer_1.bin")]
        assert steps[0] == steps[1] and len(steps[0]) == 1 and steps[0].pop() % epochs == 0
    if family in OPTIMISER_OPTIONS:  # the EMA weights and the plateau state, registered with Accelerate
        assert {"custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl"} <= set(files)


def test_validation_every_n_epochs_carries_the_latest_values(tmp_path):
    # val_every 5 over 3 epochs: the first and the last epoch validate, the second reports epoch 1's
    config = merge(smoke_config("hdr_patch"), {"train": {"epochs": 3, "val_every": 5, "checkpoint_every": 0}})
    session = run("hdr_patch", config, LocalSession(str(tmp_path)))
    assert [r["val_epoch"] for r in session.reports] == [1, 1, 3]
    assert session.checkpointed == [False, False, True]  # checkpoint_every 0: only at the end


def test_a_finished_run_started_again_reports_its_end_once_more(tmp_path):
    # a sweep's driver that dies after a trial's last checkpoint, before Tune records the trial,
    # restarts it on --resume: the run has nothing left to train, but Tune needs a result
    config = merge(smoke_config("hdr_patch"), {"train": {"epochs": 2, "checkpoint_every": 1}})
    session = run("hdr_patch", config, LocalSession(str(tmp_path)))
    run("hdr_patch", config, session)
    assert [r["epoch"] for r in session.reports] == [1, 2, 2]  # no epoch trained twice, the end reported again
    objective = load_family("hdr_patch").objective.metric
    assert session.reports[-1][objective] == session.reports[1][objective]
    assert session.checkpointed[-1] is False  # a report, not a new checkpoint
