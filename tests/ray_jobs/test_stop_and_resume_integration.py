"""A sweep stopped before its end, by Ctrl-C as a user presses it or by its storage running out of
space: it exits 130 / 3 and says how to resume, the cut trials stay resumable, and --resume ends
with exactly --trials trials. The Ctrl-C sweep is stored in an S3-compatible store on loopback
(moto_server), given as a URI with its options in the query, and resumed as on another machine."""

import functools
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pyarrow.fs
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from losstune.ray_jobs.core import storage
from losstune.ray_jobs.reports.load import load_sweep
from losstune.ray_jobs.results.study import STUDY_FILE
from losstune.ray_jobs.search.study_journal import study_journal

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def sweep(storage, *extra, name="s1"):
    return [sys.executable, "-m", "losstune.ray_jobs.sweep", "hdr_patch", "--confirm-top", "0", "--smoke-test",
            "--trials", "3", "--epochs", "6",
            "--scheduler", "none", "--max-concurrent", "2", "--set", "health.max_overflow_frac=1.0",
            "--storage", str(storage), "--name", name, *extra]


def env():
    clean = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return dict(clean, PYTHONPATH=str(REPO))


def study_states(journal: Path, name: str = "s1") -> list[str]:
    return [t.state.name for t in optuna.load_study(study_name=name, storage=JournalStorage(
        JournalFileBackend(str(journal)))).trials]


def stored_study_states(store: str, copy: Path) -> list[str]:
    """The states of the study whose journal the sweep copied into its folder in the store."""
    uri = storage.join(store, "s1", STUDY_FILE)
    if not storage.exists(uri):
        return []
    copy.write_bytes(storage.read_bytes_of(uri))
    return study_states(copy)


def wait_for_a_complete_trial(journal, timeout_s: float = 240) -> None:
    """Until the study holds one COMPLETE trial: Optuna is told the moment a trial ends, where the
    progress table prints only every few seconds (on a loaded machine its first COMPLETED was the
    final table of a sweep already done). `journal`: () -> the study's states."""
    deadline = time.monotonic() + timeout_s
    while "COMPLETE" not in journal():
        assert time.monotonic() < deadline, f"no trial complete in {timeout_s} s"
        time.sleep(0.5)


def test_ctrl_c_exits_130_and_resume_finishes_exactly_the_trials(s3_server, tmp_path):
    store = s3_server.uri("ctrl-c")
    mlflow_server = f"sqlite:///{tmp_path}/mlflow.db"  # a sweep in an object store names its tracking store
    states = functools.partial(stored_study_states, store, tmp_path / "study.journal")
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        first = subprocess.Popen(sweep(store, "--mlflow", mlflow_server), cwd=REPO, env=env(), stdout=out,
                                 stderr=subprocess.STDOUT)
        try:
            wait_for_a_complete_trial(states)  # one trial done, the others running or pending
            first.send_signal(signal.SIGINT)
            assert first.wait(timeout=180) == 130
        finally:
            first.kill()
    text = log.read_text()
    assert f"Resume with: losstune-sweep --resume --name s1 --storage {shlex.quote(store)}" in text
    assert not storage.exists(storage.join(store, "s1", "trials.parquet"))  # no results that show cut trials as done
    assert "FAIL" not in states()  # the cut trials stay RUNNING, resumable
    # --resume on another machine, as after the head was lost: no local copy of the study's journal
    os.remove(study_journal(store, "s1"))

    resumed = subprocess.run(sweep(store, "--resume", "--mlflow", mlflow_server), cwd=REPO, env=env(),
                             capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    sweep_folder = load_sweep(storage.join(store, "s1"))
    trials = sweep_folder.trials
    assert len(trials) == 3 and (trials["status"] == "COMPLETED").all() and (trials["epochs_done"] == 6).all()
    assert states() == ["COMPLETE"] * 3
    # the cut trials' epochs before the cut are there too (Tune had lost them; the checkpoints kept
    # them), once each, and every trial's best checkpoint is one Ray keeps
    for trial_id, frame in sweep_folder.history.groupby("trial_id"):
        assert frame["epoch"].tolist() == [1, 2, 3, 4, 5, 6] == frame["training_iteration"].tolist(), trial_id
    assert all(storage.exists(path) for path in trials["best_checkpoint"])
    assert storage.exists(storage.join(store, "s1", "report.html"))
    # MLflow: the sweep a parent run, every trial one finished child run with every epoch's
    # objective (a cut trial goes on in the run its first driver started)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name("s1").experiment_id], max_results=100)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.tags["trial_name"] for r in children) == sorted(f"run_trial_{t}" for t in trials["trial_id"])
    for run in children:
        # (MLflow's steps are Tune's reports: a cut trial may report its last epoch once more)
        epochs = [m.value for m in client.get_metric_history(run.info.run_id, "epoch")]
        assert run.info.status == "FINISHED" and run.data.tags["ended"] == "completed"
        assert set(epochs) == set(range(1, 7)), (run.data.tags["trial_name"], epochs)

    # Ctrl-C in a confirmation of the finished sweep (the same sweep: a second one would cost its
    # trials again): exit 130, no verdict and no summary from cut runs, and --resume ends it
    confirm = [sys.executable, "-m", "losstune.ray_jobs.confirm", storage.join(store, "s1"), "--top", "1",
               "--seeds", "2", "--max-concurrent", "2"]
    folder = storage.join(store, "s1", "confirm_top1_seeds2")
    with open(tmp_path / "confirm.log", "w") as out:
        cut = subprocess.Popen(confirm, cwd=REPO, env=env(), stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 240
            while not reported_runs(folder):  # a run has reported
                assert time.monotonic() < deadline and cut.poll() is None
                time.sleep(0.5)
            cut.send_signal(signal.SIGINT)
            assert cut.wait(timeout=180) == 130
        finally:
            cut.kill()
    text = (tmp_path / "confirm.log").read_text()
    assert "interrupted; no verdict from cut runs. Resume with: losstune-confirm" in text and "answer:" not in text
    assert not storage.exists(storage.join(folder, "confirm_summary.parquet"))
    assert not storage.exists(storage.join(folder, "confirm.parquet"))
    finished = subprocess.run(confirm + ["--resume"], cwd=REPO, env=env(), capture_output=True, text=True, timeout=400)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert "answer:" in finished.stdout
    assert "confirm_top1_seeds2" in load_sweep(storage.join(store, "s1")).confirmations


def reported_runs(folder: str) -> int:
    """How many of a confirmation's runs have a report in the store (a non-empty result.json)."""
    fs, path = storage.filesystem(folder)
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(path, recursive=True))
    except OSError:
        return 0
    return sum(1 for i in infos if i.base_name == "result.json" and i.size)


def test_a_disk_running_full_stops_the_sweep_resumable(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        # 3 MB, stop below 2.4 MB free: after a few of the first trials' checkpoints (about 0.7 MB in all)
        first = subprocess.run(sweep(disk, "--min-free-mb", "2.4", name="full"), cwd=REPO, env=env(),
                               capture_output=True, text=True, timeout=400)
        assert first.returncode == 3, first.stdout[-3000:] + first.stderr[-3000:]
        last = first.stderr.strip().splitlines()[-1]
        assert last.startswith("sweep full: stopped: --storage") and "MB free (--min-free-mb 2.4)" in last
        assert "resume with: losstune-sweep --resume --name full" in last
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)  # space freed
        resumed = subprocess.run(sweep(disk, "--min-free-mb", "2.4", "--resume", name="full"), cwd=REPO, env=env(),
                                 capture_output=True, text=True, timeout=400)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        trials = pd.read_parquet(disk / "full" / "trials.parquet")
        assert len(trials) == 3 and (trials["status"] == "COMPLETED").all()
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
