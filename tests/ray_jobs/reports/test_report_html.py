"""report.html and load_sweep, on a sweep folder written without Ray (tests/ray_jobs/sweep_folder.py)."""

import base64
import re
import shutil
import subprocess

import pytest

from losstune.ray_jobs.reports.load import load_sweep
from losstune.ray_jobs.reports.report_html import SECTIONS, write_report_html
from losstune.ray_jobs.results.tables import SweepFolderError

from tests.ray_jobs.sweep_folder import write_sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweeps") / "hdr_patch-caps-test"
    write_sweep(folder)
    return folder


def test_load_sweep_returns_every_table_of_the_folder(sweep):
    loaded = load_sweep(str(sweep))
    assert loaded.trials["is_default"].sum() == 1 and len(loaded.trials) == 12
    assert set(loaded.history["epoch"]) == {1, 2, 3}
    assert list(loaded.confirmations) == ["confirm_top1_seeds3"]
    summary = loaded.confirmations["confirm_top1_seeds3"].summary.set_index("config_id")
    # better by 0.2 at each of 3 seeds with no spread: a zero-width interval beyond the minimum effect
    assert summary.loc["top1", "verdict"] == "beats" and summary.loc["top1", "better"] == 3
    assert {"ped_anova", "fanova"} <= set(loaded.importance["evaluator"])
    assert {"objective.png", "optuna_history.png", "optuna_slice.png", "optuna_edf.png"} <= set(loaded.figures)
    assert [t.number for t in loaded.study().trials][:2] == [0, 1]
    assert loaded.study().metric_names == ["val/log_l1"]


def test_the_caps_modes_are_weighed_per_branch(sweep):
    importance = load_sweep(str(sweep)).importance
    branches = set(importance.loc[importance["evaluator"] == "fanova", "branch"])
    assert "caps/mode=B" in branches  # log_delta_scale, Mode B's own parameter, weighed there
    mode_b = importance[importance["branch"] == "caps/mode=B"]
    assert "caps/log_delta_scale" in set(mode_b["param"])


def test_load_sweep_names_a_folder_that_is_no_sweep(tmp_path):
    with pytest.raises(SweepFolderError, match=f"{tmp_path}: not a losstune sweep"):
        load_sweep(str(tmp_path))


def test_report_html_holds_each_section_and_every_figure_inline(sweep):
    text = open(write_report_html(str(sweep))).read()
    for name in SECTIONS:
        assert f'<section id="{name}">' in text
    # the answer first: the confirmed verdict in a sentence, before the single-seed summary
    assert text.index('<section id="answer">') < text.index('<section id="summary">')
    answer = text[text.index('<section id="answer">'):text.index('<section id="summary">')]
    assert "better at 3 of 3 seeds" in answer and "beats the default by more than the minimum effect" in answer
    assert "caps/log_delta_scale" in text  # importance
    assert "trainer_runs/" in text and "checkpoint_000002" in text  # best checkpoints
    assert "CPU-hours" in text and "provenance:" in text
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == len(load_sweep(str(sweep)).figures)
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)
    assert not re.search(r"<script|<link|src=\"http|href=\"http", text)  # opens with no network
    assert 'class="default"' in text  # the documented default's row shaded


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (apt-get install chromium)")
def test_report_html_renders_in_headless_chromium_without_console_errors(sweep, tmp_path):
    page = write_report_html(str(sweep))
    shot = tmp_path / "report.png"
    run = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                          f"--screenshot={shot}", "--window-size=1280,2000", f"file://{page}"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.read_bytes().startswith(b"\x89PNG")
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
