"""losstune-compare: its configs, its bad input (one line, exit 2, Ray not started, nothing written),
and what it writes, read back by load_sweep and report.html. The runs themselves go through
confirmation.run, which tests/ray_jobs/test_confirm_integration.py runs on a real Ray; here it
is replaced by a table of made-up runs, so no Ray starts."""

import dataclasses
import json

import pandas as pd
import pytest

from losstune.ray_jobs.core import cluster
from losstune.ray_jobs import compare
from losstune.ray_jobs.cli.compare_configs import build_candidates
from losstune.trainables.registry import load_family
from losstune.ray_jobs.confirmation import conclusion, runs as confirmation
from losstune.ray_jobs.confirmation import verdicts
from losstune.ray_jobs.reports.load import load_sweep
from losstune.ray_jobs.core.storage import join, read_bytes_of, write_parquet


@pytest.fixture
def no_ray(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a refused comparison reached Ray's start")

    monkeypatch.setattr(cluster, "start_ray", refuse)


@pytest.fixture
def other_family_config(tmp_path):
    path = tmp_path / "best_config.json"
    path.write_text(json.dumps({"data": {"num_train": 64}, "loss": {"weights": {"style_swd": 1.0}}}))
    return str(path)


@pytest.mark.parametrize("argv, expected", [
    (["hdr_patch", "default"], "CONFIG: give at least 2 configs to compare, got 1"),
    (["hdr_patch", "default", "phase9"], "CONFIG: 'phase9' is not 'default', a preset of hdr_patch (phase1, phase2, "
                                         "phase3_adaptive, phase3_layernorm) or a JSON config file"),
    (["hdr_patch", "default", "phase1", "--seeds", "1"], "--seeds: must be >= 2, got 1"),
    (["hdr_patch", "default", "phase1", "--data", ""], "argument --data: empty (an unset shell variable?)"),
    # issue 73, items 19 and 28: one label for two configs was accepted, renamed a' silently
    (["hdr_patch", "default", "default"], "CONFIG: two configs are labelled 'default' (default and default); label "
                                          "them apart, e.g. default2=default"),
    (["hdr_patch", "a=default", "a=phase1"], "CONFIG: two configs are labelled 'a' (default and phase1)"),
    (["hdr_patch", "=default", "phase1"], "CONFIG '=default': the label before '=' is empty"),
    (["hdr_patch", "default", "phase1", "--name", " "], "--name: must be a plain folder name inside --storage, got ' '"),
    (["hdr_patch", "default", "phase1", "--set", "phase2:train.epochs=3"],
     "--set: 'phase2:train.epochs=3' names 'phase2', not one of the configs (default, phase1)"),
    (["hdr_patch", "default", "phase1", "--min-effect", "x%"],
     "--min-effect: expected a number or a percentage such as 1%, got 'x%'"),
    (["hdr_patch", "default", "phase1", "--set", "phase1:train.epochs=3"],
     "--epochs: the configs train for different epochs (default 10, phase1 3); give --epochs to compare them"),
])
def test_bad_input_is_one_line_before_ray_starts(capsys, no_ray, tmp_path, argv, expected):
    try:
        code = compare.main([*argv, "--storage", str(tmp_path / "out")])
    except SystemExit as exit_:  # argparse's own refusals (a flag's type)
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith((f"compare: error: {expected}", f"losstune-compare: error: {expected}"))
    assert not (tmp_path / "out").exists()


def test_a_config_file_of_another_family_is_named(capsys, no_ray, tmp_path, other_family_config):
    assert compare.main(["hdr_patch", "default", other_family_config, "--storage", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"compare: error: CONFIG {other_family_config} (not a hdr_patch config?): loss.weights.style_swd")
    assert len(err.splitlines()) == 1


def test_labels_and_per_config_changes():
    family = load_family("hdr_patch")
    args = compare.parse_args(["hdr_patch", "default", "phase1", "aa=default", "--set", "train.batch_size=8",
                               "--set", "phase1:loss.huber_delta=0.3"])
    chosen = build_candidates(family, args)
    assert [c.config_id for c in chosen] == ["default", "phase1", "aa"]  # the second default: an A/A control
    assert all(c.point["train/batch_size"] == 8 for c in chosen)
    assert chosen[1].point["loss/huber_delta"] == 0.3 and chosen[0].point["loss/huber_delta"] == 0.2
    # what phase1 sets differently from the default, as the answer names it (its clamp value, 8, is the
    # default's, only switched on)
    assert verdicts.setting(chosen[1], chosen[0]) == (
        "caps/abs_max=6, caps/alpha=1, caps/clamp_enabled=True, loss/log_supervision_type=huber, "
        "loss/huber_delta=0.3, loss/weights/log_supervision=2")


def test_named_configs_and_joined_presets():
    family = load_family("medgen_diffusion")
    args = compare.parse_args(["medgen_diffusion", "small", "small+sam", "jitter=small", "--smoke-test",
                               "--set", "jitter:regularisation.timestep_jitter=true"])
    chosen = build_candidates(family, args)
    assert [c.config_id for c in chosen] == ["small", "small+sam", "jitter"]
    assert verdicts.setting(chosen[1], chosen[0]) == "optim/sam_rho=0.05"
    assert verdicts.setting(chosen[2], chosen[0]) == "regularisation/timestep_jitter=True"


def made_up_runs(plan, chosen, seeds, resume=False, folder=None, earlier=None):
    """What confirmation.run returns: phase1 0.1 lower than the default at each seed, spread 0.02."""
    rows = [{"config_id": c.config_id, "sweep_trial": "", "seed": seed, "status": "COMPLETED", "stop_reason": "",
             "objective": 1.0 - 0.1 * (c.config_id == "phase1") + 0.02 * ((seed * (k + 1)) % 3), "epochs_done": 2,
             "wall_s": 5.0} for k, c in enumerate(chosen) for seed in seeds]
    table = pd.DataFrame(rows)
    write_parquet(join(folder, confirmation.CONFIRM_FILE), table)  # as the real run does, making the folder
    return table


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_comparison_writes_what_load_sweep_and_the_report_read(monkeypatch, tmp_path, capsys, request, where):
    # in a local folder, and in an S3-compatible store (moto_server on loopback) given as a URI with
    # its options in the query
    monkeypatch.setattr(cluster, "start_ray", lambda verbose: None)
    monkeypatch.setattr(cluster, "fit_to_cluster", lambda plan: dataclasses.replace(plan, max_concurrent=1))
    monkeypatch.setattr(conclusion, "run", made_up_runs)  # where run_and_conclude finds it
    store = str(tmp_path) if where == "local" else request.getfixturevalue("s3_server").uri(f"compare-{tmp_path.name}")
    argv = ["hdr_patch", "default", "phase1", "--seeds", "5", "--smoke-test", "--storage", store, "--name", "c"]
    assert compare.main(argv) == 0
    out = capsys.readouterr().out
    assert "phase1 (" in out.splitlines()[-2] and "better at 5 of 5 seeds" in out.splitlines()[-2]
    sweep = load_sweep(join(store, "c"))
    assert sweep.meta["kind"] == "compare" and list(sweep.meta["configs"]) == ["default", "phase1"]
    summary = sweep.confirmations["compare_seeds5"].summary.set_index("config_id")
    assert summary.loc["phase1", "verdict"] == "beats" and summary.loc["phase1", "diff"] == pytest.approx(-0.1, abs=0.02)
    html = read_bytes_of(join(store, "c", "report.html")).decode()
    assert '<section id="answer">' in html and "beats the default by more than the minimum effect" in html
    # the same name again is refused; --resume with other configs too
    assert compare.main(argv) == 2
    assert "exists; pass --resume" in capsys.readouterr().err
    assert compare.main([*argv[:2], "phase2", *argv[3:], "--resume"]) == 2
    assert "compared other configs" in capsys.readouterr().err


def test_seeds_auto_stops_when_decided_and_says_why(monkeypatch, tmp_path, capsys):
    # made-up runs (phase1 0.1 better at every seed, spread 0.02, against a minimum effect of 1%): at 3
    # seeds the gains less their margins are about 0.070, 0.110, 0.090, t = 0.090 / 0.0115 = 7.8, below
    # the first look's boundary (19.5); at 5 seeds beyond the second's: two rounds, in the comparison's folder
    monkeypatch.setattr(cluster, "start_ray", lambda verbose: None)
    monkeypatch.setattr(cluster, "fit_to_cluster", lambda plan: dataclasses.replace(plan, max_concurrent=1))
    monkeypatch.setattr(conclusion, "run", made_up_runs)  # where run_and_conclude finds it
    argv = ["hdr_patch", "default", "phase1", "--seeds", "auto", "--smoke-test", "--storage", str(tmp_path), "--name", "c"]
    assert compare.main(argv) == 0
    out = capsys.readouterr().out
    assert "2 configs x 3 seeds, then 2 at a time until decided (at most 20)" in out
    assert "--seeds auto stopped at 5 of up to 20 seeds: every config decided by 5 seeds" in out
    summary = load_sweep(str(tmp_path / "c")).confirmations["compare_seeds_auto20"].summary.set_index("config_id")
    assert summary.loc["phase1", "verdict"] == "beats" and summary.loc["phase1", "interval"] == "repeated (group-sequential)"
    assert summary.loc["phase1", "conclusion"].endswith("decided at 5 seeds (--seeds auto)")
    rounds = tmp_path / "c" / "compare_seeds_auto20"
    assert sorted(p.name for p in rounds.glob("look*")) == ["look3", "look5"]
