"""A sweep stopped before its end, by Ctrl-C as a user presses it or by its storage running out of
space: it exits 130 / 3 and says how to resume, the cut trials stay resumable, and --resume ends
with exactly --trials trials."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

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


def study_states(storage) -> list[str]:
    journal = JournalStorage(JournalFileBackend(str(Path(storage) / "s1" / "optuna_study.journal")))
    return [t.state.name for t in optuna.load_study(study_name="s1", storage=journal).trials]


def wait_for_a_complete_trial(storage, timeout_s: float = 240) -> None:
    """Until the study holds one COMPLETE trial: Optuna is told the moment a trial ends, where the
    progress table prints only every few seconds (on a loaded machine its first COMPLETED was the
    final table of a sweep already done)."""
    journal = Path(storage) / "s1" / "optuna_study.journal"
    deadline = time.monotonic() + timeout_s
    while not (journal.exists() and "COMPLETE" in study_states(storage)):
        assert time.monotonic() < deadline, f"no trial complete in {timeout_s} s"
        time.sleep(0.5)


def test_ctrl_c_exits_130_and_resume_finishes_exactly_the_trials(tmp_path):
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        first = subprocess.Popen(sweep(tmp_path), cwd=REPO, env=env(), stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_a_complete_trial(tmp_path)  # one trial done, the others running or pending
            first.send_signal(signal.SIGINT)
            assert first.wait(timeout=180) == 130
        finally:
            first.kill()
    text = log.read_text()
    assert f"Resume with: losstune-sweep --resume --name s1 --storage {tmp_path}" in text
    assert not (tmp_path / "s1" / "trials.parquet").exists()  # no results that show cut trials as done
    assert "FAIL" not in study_states(tmp_path)  # the cut trials stay RUNNING, resumable

    resumed = subprocess.run(sweep(tmp_path, "--resume"), cwd=REPO, env=env(), capture_output=True, text=True,
                             timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "s1" / "trials.parquet")
    assert len(trials) == 3 and (trials["status"] == "COMPLETED").all() and (trials["epochs_done"] == 6).all()
    assert study_states(tmp_path) == ["COMPLETE"] * 3
    # the cut trials' epochs before the cut are there too (Tune had lost them; the checkpoints kept
    # them), once each, and every trial's best checkpoint is one Ray keeps
    history = pd.read_parquet(tmp_path / "s1" / "history.parquet")
    for trial_id, frame in history.groupby("trial_id"):
        assert frame["epoch"].tolist() == [1, 2, 3, 4, 5, 6] == frame["training_iteration"].tolist(), trial_id
    assert all(os.path.isdir(path) for path in trials["best_checkpoint"])

    # Ctrl-C in a confirmation of the finished sweep (the same sweep: a second one would cost its
    # trials again): exit 130, no verdict and no summary from cut runs, and --resume ends it
    confirm = [sys.executable, "-m", "losstune.ray_jobs.confirm", str(tmp_path / "s1"), "--top", "1", "--seeds", "2",
               "--max-concurrent", "1"]
    folder = tmp_path / "s1" / "confirm_top1_seeds2"
    with open(tmp_path / "confirm.log", "w") as out:
        cut = subprocess.Popen(confirm, cwd=REPO, env=env(), stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 240
            while not any(p.stat().st_size for p in folder.glob("*/result.json")):  # a run has reported
                assert time.monotonic() < deadline and cut.poll() is None
                time.sleep(0.5)
            cut.send_signal(signal.SIGINT)
            assert cut.wait(timeout=180) == 130
        finally:
            cut.kill()
    text = (tmp_path / "confirm.log").read_text()
    assert "interrupted; no verdict from cut runs. Resume with: losstune-confirm" in text and "answer:" not in text
    assert not (folder / "confirm_summary.parquet").exists() and not (folder / "confirm.parquet").exists()
    finished = subprocess.run(confirm + ["--resume"], cwd=REPO, env=env(), capture_output=True, text=True, timeout=400)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert (folder / "confirm_summary.parquet").exists() and "answer:" in finished.stdout


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
