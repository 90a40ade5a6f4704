"""losstune-analyze rebuilds a sweep's tables, best config and plots from Tune's files alone, as
the sweep wrote them (its refusals are in test_sweep_cli.py)."""

import io
import json
import os
import shutil

import pandas as pd
import pyarrow.fs
import pytest

from losstune.ray_jobs import analyze
from losstune.ray_jobs.core import storage

pytestmark = pytest.mark.integration

WRITTEN = ("trials.parquet", "history.parquet", "best_config.json")


def by_trial_and_epoch(history: pd.DataFrame) -> pd.DataFrame:
    return history.sort_values(["trial_id", "epoch"]).reset_index(drop=True)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_analyze_rebuilds_what_the_sweep_wrote(finished_sweep, tmp_path, capsys, request, where):
    # the session's shared sweep (tests/conftest.py), copied: a sweep folder moved elsewhere, as a
    # user copies results off a cluster, is read where it lies: a local folder, or an S3-compatible
    # store (moto_server on loopback) given as a URI with its options in the query
    local = tmp_path / "caps3"
    shutil.copytree(finished_sweep[0], local)
    written = {name: (local / name).read_bytes() for name in WRITTEN}
    swept_trials = pd.read_parquet(local / "trials.parquet")
    for name in WRITTEN:
        os.remove(local / name)
    experiment = str(local)
    if where == "s3":
        experiment = storage.join(request.getfixturevalue("s3_server").uri(f"analyze-{tmp_path.name}"), "caps3")
        fs, path = storage.filesystem(experiment)
        pyarrow.fs.copy_files(str(local), path, source_filesystem=pyarrow.fs.LocalFileSystem(), destination_filesystem=fs)
    capsys.readouterr()

    assert analyze.main([experiment, "--top", "1"]) == 0
    out = capsys.readouterr().out
    trials = storage.read_parquet(storage.join(experiment, "trials.parquet"))
    columns = ["trial_id", "status", "objective", "is_default", "epochs_done"]
    pd.testing.assert_frame_equal(trials[columns].sort_values("trial_id").reset_index(drop=True),
                                  swept_trials[columns].sort_values("trial_id").reset_index(drop=True))
    assert storage.read_json(storage.join(experiment, "best_config.json")) == json.loads(written["best_config.json"])
    # the same rows and columns; the columns' order follows which trial Tune lists first
    rebuilt = storage.read_parquet(storage.join(experiment, "history.parquet"))
    swept = pd.read_parquet(io.BytesIO(written["history.parquet"]))
    pd.testing.assert_frame_equal(by_trial_and_epoch(rebuilt), by_trial_and_epoch(swept), check_like=True)
    assert "best " in out and storage.join(experiment, "report.html") in out


def test_analyze_of_two_sweeps_prints_and_writes_them_side_by_side(finished_sweep, tmp_path, capsys):
    # two copies of the session's shared sweep, as the same space before and after a change
    for name in ("before", "after"):
        shutil.copytree(finished_sweep[0], tmp_path / name)
    capsys.readouterr()
    assert analyze.main([str(tmp_path / "before"), str(tmp_path / "after")]) == 0
    out = capsys.readouterr().out
    # both are named caps3: each is labelled by its folder
    assert "best trial:\n  before: " in out and f"side by side: {tmp_path}/side_by_side-before-after.html" in out
    page = (tmp_path / "side_by_side-before-after.html").read_text()
    assert "<th>before</th><th>after</th>" in page and "documented default" in page
    # a folder that is no sweep is refused before anything is written
    assert analyze.main([str(tmp_path / "before"), str(tmp_path)]) == 2


def test_analyze_prints_each_confirmations_answer(tmp_path):
    # report.html opens with the answer; losstune-analyze printed none
    import pandas as pd

    from losstune.ray_jobs.analyze import answers
    from losstune.ray_jobs.confirmation.runs import CONFIRM_FILE, REPORT_FILE, SUMMARY_FILE

    folder = tmp_path / "confirm_top1_seeds5"
    folder.mkdir()
    pd.DataFrame({"config_id": ["default"]}).to_parquet(folder / CONFIRM_FILE)
    pd.DataFrame({"config_id": ["default"]}).to_parquet(folder / SUMMARY_FILE)
    (folder / REPORT_FILE).write_text("confirmation: ...\n  how to read it: ...\nanswer:\n  top1 (x=1): beats the default\n")
    assert answers(str(tmp_path)) == "\nconfirm_top1_seeds5: answer:\n  top1 (x=1): beats the default"
