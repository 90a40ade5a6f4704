"""A real 2-node Ray cluster on this machine (ray.cluster_utils.Cluster: a head that hosts the
drivers, as cluster.yaml's does, and a worker node), driven the way users drive it: `ray job submit`
and sweeps as separate processes. Each test is bounded in time and the cluster is shut down after.
A node lost mid-sweep is tests/ray_jobs/test_autoscaling_integration.py's, on an autoscaled cluster."""

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest


pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_PORT = 8275
# A smoke epoch takes 0.1-0.4 s once Train polls every 0.25 s: a trial of 6 epochs could end
# before the worker or node is taken away after its epoch-2 checkpoint, and nothing would resume.
LONG_EPOCHS = 30


@pytest.fixture(scope="module")
def two_nodes():
    from ray.cluster_utils import Cluster

    # The nodes' worker processes import the project as cluster.yaml's nodes do after their
    # `pip install -e`: here by inheriting PYTHONPATH from this process.
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(REPO)
    # Ports of their own, so that another Ray on this machine (a user's, a benchmark's) cannot
    # hold them: the head's job agent would then never register.
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"losstune_driver": 8}, "include_dashboard": True,
        "dashboard_port": DASHBOARD_PORT, "dashboard_agent_listen_port": DASHBOARD_PORT + 1})
    try:
        worker = cluster.add_node(num_cpus=2, dashboard_agent_listen_port=DASHBOARD_PORT + 2)
        cluster.wait_for_nodes()
        wait_for_job_agent(cluster)
        yield cluster, worker
    finally:  # also when the set-up fails: a cluster left running would capture later ray.init()s
        cluster.shutdown()
        os.environ.pop("PYTHONPATH") if saved is None else os.environ.update(PYTHONPATH=saved)


def wait_for_job_agent(cluster, timeout_s=90):
    """The dashboard answers before the head's job agent has registered ("No available agent to
    submit job"), later on a loaded machine: wait until a trivial job goes through."""
    deadline = time.time() + timeout_s
    while True:
        cmd = [os.path.join(os.path.dirname(sys.executable), "ray"), "job", "submit", "--address",
               f"http://127.0.0.1:{DASHBOARD_PORT}", "--", sys.executable, "-c", "pass"]
        done = subprocess.run(cmd, env=env_for(cluster), capture_output=True, text=True, timeout=120)
        if done.returncode == 0:
            return
        if "No available agent" not in done.stdout + done.stderr or time.time() > deadline:
            raise AssertionError(done.stdout[-2000:] + done.stderr[-2000:])
        time.sleep(2)


def sweep_cmd(storage, name, *extra):
    return [sys.executable, "-m", "losstune.ray_jobs.sweep", "hdr_patch", "--confirm-top", "0", "--smoke-test",
            "--scheduler", "none", "--set", "health.max_overflow_frac=1.0", "--storage", str(storage), "--name", name,
            *extra]


def env_for(cluster):
    return dict(os.environ, RAY_ADDRESS=cluster.address, RAY_AUTH_MODE="token", PYTHONPATH=str(REPO))


def history(storage, name):
    return pd.read_parquet(Path(storage) / name / "history.parquet")


def submit(cluster, sweep_args, background=False, env_vars=None):
    """`ray job submit` of a sweep, as users launch one. Not --working-dir here: both nodes of this
    test share one machine's runtime_resources folder, and one node's clean-up deletes the package
    the other's job runs in; the code is on this disk (PYTHONPATH)."""
    runtime_env = json.dumps({"env_vars": {"PYTHONPATH": str(REPO), **(env_vars or {})}})
    cmd = [os.path.join(os.path.dirname(sys.executable), "ray"), "job", "submit", "--address",
           f"http://127.0.0.1:{DASHBOARD_PORT}", "--runtime-env-json", runtime_env, "--", *sweep_args]
    if background:
        return subprocess.Popen(cmd, env=env_for(cluster), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = subprocess.run(cmd, env=env_for(cluster), capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def registered_epoch(storage, name, node=None) -> int:
    """The epoch of the latest checkpoint Ray has registered (reported, not only written: a worker
    killed between writing and reporting loses that checkpoint, as it should), over the sweep's
    trials, or those whose last checkpoint was trained on `node` (the loop's 12-character node id):
    Tune's record (a trial's result.json, a row per report) of a trial that trains in its own
    process, Train's snapshot of one that trains in a worker group."""
    registered = []
    for path in glob.glob(str(Path(storage) / name / "run_trial_*" / "result.json")):
        for line in Path(path).read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # being written
            if row.get("checkpoint_dir_name"):
                registered.append(row)
    for path in glob.glob(str(Path(storage) / name / "trainer_runs" / "*" / "checkpoint_manager_snapshot.json")):
        try:
            registered.append(json.loads(Path(path).read_text())["latest_checkpoint_result"]["metrics"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # being rewritten
    return max([int(row["epoch"]) for row in registered if node is None or row.get("node") == node], default=0)


def alive_pids(cluster, actor_class: str) -> list[int]:
    """The processes of this cluster's live actors of a class (another Ray on the machine has its own)."""
    from ray.util.state import list_actors

    return [actor.pid for actor in list_actors(address=cluster.address, filters=[("state", "=", "ALIVE")], detail=True)
            if actor_class in actor.class_name]


@pytest.mark.parametrize("trained_in, actor_class", [
    ("--worker-group", "RayTrainWorker"),  # Ray Train restarts the worker group (its FailureConfig)
    ("", "ImplicitFunc"),  # Tune restarts the trial process, where a one-worker trial trains (tune.FailureConfig)
], ids=["worker-group", "trial-process"])
def test_a_killed_train_worker_resumes_from_its_last_checkpoint(two_nodes, tmp_path, trained_in, actor_class):
    cluster, _ = two_nodes
    sweep = submit(cluster, sweep_cmd(tmp_path, "kill", "--trials", "1", "--epochs", str(LONG_EPOCHS),
                                      *[flag for flag in [trained_in] if flag]), background=True)
    try:
        wait_for(lambda: registered_epoch(tmp_path, "kill") >= 2, 240, "the epoch-2 checkpoint")
        killed_after = registered_epoch(tmp_path, "kill")
        pids = alive_pids(cluster, actor_class)
        assert pids, f"no {actor_class} process found"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        assert sweep.wait(timeout=300) == 0  # the job succeeded
    finally:
        sweep.kill()
    runs = history(tmp_path, "kill")
    epochs, restarts = list(runs["epoch"]), list(runs["restarts"])
    # after the kill, the restarted worker goes on from a checkpoint at least as late as the one seen
    # before the kill (not from epoch 1), skips no epoch, and runs to the full length
    first_after = restarts.index(1)
    resumed_at = epochs[first_after]
    assert killed_after + 1 <= resumed_at <= epochs[first_after - 1] + 1, (epochs, restarts)
    assert epochs[first_after:] == list(range(resumed_at, LONG_EPOCHS + 1)), (epochs, restarts)
    trials = pd.read_parquet(tmp_path / "kill" / "trials.parquet")
    assert trials.loc[0, "status"] == "COMPLETED" and trials.loc[0, "restarts"] == 1


def test_a_killed_sweep_driver_resumes_without_rerunning_finished_trials(two_nodes, tmp_path):
    cluster, _ = two_nodes
    sweep = submit(cluster, sweep_cmd(tmp_path, "drv", "--trials", "4", "--epochs", "3", "--max-concurrent", "2"),
                   background=True)
    try:
        finished = lambda: sum(1 for p in glob.glob(str(tmp_path / "drv" / "run_trial_*" / "result.json"))
                               if '"epoch": 3' in open(p).read())
        wait_for(lambda: finished() >= 1, 300, "a finished trial")
        driver = subprocess.run(["pgrep", "-f", "ray_jobs.sweep.*--name drv"], capture_output=True, text=True)
        for pid in driver.stdout.split():  # the job's driver process itself, as a crash would take it
            os.kill(int(pid), signal.SIGKILL)
        sweep.wait(timeout=60)
    finally:
        sweep.kill()
    before = {json.loads(line)["trial_id"]: json.loads(line)["epoch"]
              for p in glob.glob(str(tmp_path / "drv" / "run_trial_*" / "result.json")) for line in open(p)}
    submit(cluster, [*sweep_cmd(tmp_path, "drv"), "--resume"])
    trials = pd.read_parquet(tmp_path / "drv" / "trials.parquet")
    assert len(trials) == 4 and (trials["epochs_done"] == 3).all()
    # A trial whose last epoch was written before the kill but not yet recorded by Tune starts
    # again and reports its end once more, trained nothing (trainables/engine/loop.py): the same epoch
    # with the same epoch time. Anything else would be training again.
    trained = history(tmp_path, "drv").drop_duplicates(["trial_id", "epoch", "time/epoch_s"])
    runs = trained.groupby("trial_id")["epoch"].apply(list)
    for trial_id, epochs in runs.items():
        if before.get(trial_id) == 3:
            assert epochs == [1, 2, 3], (trial_id, epochs)  # finished before the kill: not rerun
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "drv" / "optuna_study.journal")))
    states = [t.state for t in optuna.load_study(study_name="drv", storage=storage).trials]
    assert optuna.trial.TrialState.RUNNING not in states, states
