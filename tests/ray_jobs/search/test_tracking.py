"""MLflow and the user's own Tune callbacks (ray_jobs/search/tracking.py), without Ray: the callback is
driven as Tune drives it, and MLflow's own client reads back what it logged."""

from types import SimpleNamespace

import pytest
from ray.tune import Callback

from losstune.ray_jobs import sweep
from losstune.ray_jobs.core.usage import UsageError
from losstune.ray_jobs.search.tracking import MLFLOW_DB, SweepInMLflow, tracking_uri, user_callbacks


class EndedTrials(Callback):
    """A user's Tune callback (--callback tests.ray_jobs.search.test_tracking:EndedTrials): the trials it saw end."""

    ended: list = []

    def on_trial_complete(self, iteration, trials, trial, **info):
        EndedTrials.ended.append(trial.trial_id)


def mlflow_runs(folder, sweep_name: str) -> tuple:
    """(the sweep's parent run, its child runs) in the sweep folder's MLflow store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder}/{MLFLOW_DB}")
    experiment = client.get_experiment_by_name(sweep_name).experiment_id
    runs = client.search_runs([experiment], max_results=1000)
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parent, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def mlflow_history(folder, run, metric: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder}/{MLFLOW_DB}")
    return [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, metric)]


class FakeTrial(SimpleNamespace):
    """What Tune's MLflow callback reads of a trial."""

    __hash__ = object.__hash__

    def __str__(self):
        return f"run_trial_{self.trial_id}"


def test_a_sweep_is_a_parent_run_and_each_trial_a_child_with_its_epochs_end_and_checkpoint(tmp_path):
    from losstune.ray_jobs.results.trial_links import BestCheckpoints

    uri = tracking_uri("", str(tmp_path))
    assert uri == f"sqlite:///{tmp_path}/{MLFLOW_DB}"
    checkpoints = BestCheckpoints("s", "min")
    checkpoints.setup()
    tracker = SweepInMLflow(uri, "s", {"family": "hdr_patch"}, full_length=3, default_point={"caps/mode": "A"},
                            seed=7, artifacts=f"file://{tmp_path}/mlartifacts")
    tracker.setup()
    trials = [FakeTrial(trial_id="a", config={"caps": {"mode": "B"}}, last_result={}),
              FakeTrial(trial_id="b", config={"caps": {"mode": "A"}}, last_result={})]
    for trial, epochs in zip(trials, (3, 1)):
        tracker.log_trial_start(trial)
        for epoch in range(1, epochs + 1):
            trial.last_result = {"epoch": epoch, "training_iteration": epoch, "val/log_l1": 1.0 / epoch,
                                 "checkpoint_score": 1.0 / epoch, "checkpoint_path": f"/ck/{trial.trial_id}/{epoch}"}
            checkpoints.on_trial_result(0, trials, trial, trial.last_result)
            tracker.log_trial_result(epoch, trial, trial.last_result)
        tracker.log_trial_end(trial)
    # a resumed sweep's tracker finds the same parent run
    again = SweepInMLflow(uri, "s", {"family": "hdr_patch"}, full_length=3)
    again.setup()
    assert again.tags["mlflow.parentRunId"] == tracker.tags["mlflow.parentRunId"]
    parent, children = mlflow_runs(tmp_path, "s")
    assert parent.data.tags["family"] == "hdr_patch" and parent.info.status == "FINISHED"
    runs = {r.data.tags["trial_name"]: r for r in children}
    assert sorted(runs) == ["run_trial_a", "run_trial_b"]
    a, b = runs["run_trial_a"], runs["run_trial_b"]
    assert a.data.params["caps/mode"] == "B" and mlflow_history(tmp_path, a, "val/log_l1") == [
        (1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert a.data.tags["ended"] == "completed" and a.data.tags["best_checkpoint"] == "/ck/a/3"
    assert b.data.tags["ended"] == "stopped by the scheduler at epoch 1 of 3" and b.info.status == "FINISHED"
    # what each trial trained, and the sweep's artifacts in its own folder (was ./mlruns of the cwd)
    assert (a.data.tags["documented_default"], b.data.tags["documented_default"]) == ("False", "True")
    assert a.data.params["train/seed"] == "7"
    from mlflow.tracking import MlflowClient

    experiment = MlflowClient(tracking_uri=uri).get_experiment_by_name("s")
    assert experiment.artifact_location == f"file://{tmp_path}/mlartifacts"


def test_a_confirmation_run_is_tagged_with_its_config_and_seed(tmp_path):
    uri = tracking_uri("", str(tmp_path))
    tracker = SweepInMLflow(uri, "s", {}, full_length=2, runs=[("default", 1, {"caps/mode": "A"}),
                                                                 ("top1", 1, {"caps/mode": "B"})])
    tracker.setup()
    trial = FakeTrial(trial_id="c", config={"run": 1}, last_result={"epoch": 2})
    tracker.log_trial_start(trial)
    tracker.log_trial_end(trial, failed=True)
    [run] = mlflow_runs(tmp_path, "s")[1]
    assert (run.data.tags["config_id"], run.data.tags["seed"]) == ("top1", "1")
    assert run.data.params["caps/mode"] == "B" and run.data.params["train/seed"] == "1"
    assert "run" not in run.data.params  # Tune's index of the run in the list, no parameter of the config
    assert run.data.tags["ended"] == "errored" and run.info.status == "FAILED"


def test_a_sweep_on_cloud_storage_needs_a_tracking_uri():
    with pytest.raises(UsageError, match="--mlflow: a sweep stored at s3://b/s needs a tracking URI"):
        tracking_uri("", "s3://b/s")
    assert tracking_uri("http://mlflow:5000", "s3://b/s") == "http://mlflow:5000"


@pytest.mark.parametrize("spec, message", [
    ("nocolon", "is not MODULE:NAME"),
    ("losstune.nowhere:X", "cannot import losstune.nowhere:X"),
    ("losstune.ray_jobs.search.tracking:tracking_uri", "is not a ray.tune.Callback subclass"),
])
def test_a_callback_that_cannot_be_made_is_refused_before_ray_starts(spec, message, capsys, tmp_path):
    with pytest.raises(UsageError, match=message):
        user_callbacks([spec])
    assert sweep.main(["hdr_patch", "--callback", spec, "--storage", str(tmp_path), "--name", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sweep: error: --callback: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_the_users_callback_is_made_from_its_module():
    [made] = user_callbacks(["tests.ray_jobs.search.test_tracking:EndedTrials"])
    assert isinstance(made, EndedTrials)
