"""A sweep's own confirmation and losstune-confirm on the same finished sweep, on a real local Ray."""

import json

import pandas as pd
import pytest
from tensorboard.plugins.hparams import api_pb2

from losstune.ray_jobs import compare
from losstune.ray_jobs import confirm
from losstune.ray_jobs import sweep
from losstune.ray_jobs.confirmation.runs import CONFIRM_FILE, SUMMARY_FILE
from losstune.ray_jobs.results.tables import META_FILE
from tests.ray_jobs.search.test_tracking import EndedTrials, mlflow_history, mlflow_runs
from tests.tensorboard_view import hparams_view

pytestmark = pytest.mark.integration


def test_a_sweep_confirms_its_best_against_the_default_at_new_seeds(local_ray, tmp_path, capsys):
    EndedTrials.ended.clear()
    code = sweep.main(["hdr_patch", "--space", "caps", "--trials", "3", "--smoke-test", "--scheduler", "none",
                       "--set", "health.max_overflow_frac=1.0", "--confirm-top", "1", "--confirm-seeds", "2",
                       "--storage", str(tmp_path), "--name", "c", "--mlflow",
                       "--callback", "tests.ray_jobs.search.test_tracking:EndedTrials"])
    out = capsys.readouterr().out
    assert code == 0
    runs = pd.read_parquet(tmp_path / "c" / "confirm_top1_seeds2" / CONFIRM_FILE)
    # the default and the best, each at seeds 1 and 2 (the sweep trained at train.seed 0)
    assert sorted(zip(runs["config_id"], runs["seed"])) == [("default", 1), ("default", 2), ("top1", 1), ("top1", 2)]
    assert (runs["status"] == "COMPLETED").all() and runs["objective"].notna().all()
    # the same config at two seeds trains two different runs
    assert runs.loc[runs["config_id"] == "default", "objective"].nunique() == 2
    # TensorBoard on the sweep's folder: one experiment over the space's every parameter and the
    # seed; a row per trial and per confirmation run (reused processes' files included), each with
    # its last epoch's objective
    experiment, groups = hparams_view(tmp_path / "c")
    assert {"caps/log_delta_scale", "caps/abs_max", "caps/clamp_value", "train/seed"} <= {
        p.name for p in experiment.hparam_infos}
    confirmation_rows = {name: group for name, group in groups.items() if name.startswith("confirm_top1_seeds2/")}
    assert len(groups) == 7 and len(confirmation_rows) == 4, sorted(groups)
    assert sorted(g.hparams["train/seed"].number_value for g in confirmation_rows.values()) == [1, 1, 2, 2]
    assert all(len(g.metric_values) == 1 and g.metric_values[0].training_step > 0 for g in groups.values())
    # and how each ended, written by the driver (every trial and run here ran all its epochs)
    assert {api_pb2.Status.Name(g.sessions[0].status) for g in groups.values()} == {"STATUS_SUCCESS"}
    # MLflow (read with its own client): the sweep a parent run, each trial and confirmation run a
    # child with its parameters, every epoch's objective, how it ended and its best checkpoint
    parent, children = mlflow_runs(tmp_path / "c", "c")
    assert parent.data.tags["family"] == "hdr_patch" and len(children) == 7
    trial_runs = [r for r in children if "config_id" not in r.data.tags]
    confirm_runs = [r for r in children if "config_id" in r.data.tags]
    assert len(trial_runs) == 3 and sorted((r.data.tags["config_id"], r.data.tags["seed"]) for r in confirm_runs) == [
        ("default", "1"), ("default", "2"), ("top1", "1"), ("top1", "2")]
    assert all(r.data.params["train/seed"] == r.data.tags["seed"] for r in confirm_runs)
    assert all(r.info.status == "FINISHED" and r.data.tags["ended"] == "completed" and r.data.tags["best_checkpoint"]
               for r in children)
    assert all(len(mlflow_history(tmp_path / "c", r, "val/log_l1")) == 2 for r in children)  # its 2 smoke epochs
    assert {r.data.params["caps/mode"] for r in trial_runs} <= {"A", "B"}
    # the user's own Tune callback (--callback) saw every trial and confirmation run end
    assert len(EndedTrials.ended) == 7
    trials = pd.read_parquet(tmp_path / "c" / "trials.parquet")
    # where the numbers come from, saved with the sweep and printed in its report
    saved = json.loads((tmp_path / "c" / META_FILE).read_text())["provenance"]
    assert saved["data"] == "synthetic" and saved["packages"]["ray"] == "2.60.0" and "provenance: commit" in out
    # and what it cost: each trial's resources times its wall time, summed in the report
    assert (trials["cpu_s"] > 0).all() and "cost: 3 trials" in out and "cost: 4 runs, 8 epochs" in out
    assert runs.loc[runs["config_id"] == "top1", "sweep_trial"].iloc[0] == trials.loc[0, "trial_id"]
    # the console followed the sweep and the confirmation: done of total, elapsed, the time left
    assert "== final == 3/3 trials done (3 COMPLETED); elapsed " in out
    assert "== final == 4/4 trials done (4 COMPLETED); elapsed " in out
    report = out[out.index("confirmation:"):]
    answer = report.split("answer:\n")[1].splitlines()[0]  # the answer: a sentence per config, after the details
    assert "training seeds 1, 2" in report and answer.startswith("  top1 (") and "of 2 seeds, p = " in answer
    # the command line on the same sweep: a second run of it is refused, --resume reads it back
    assert confirm.main([str(tmp_path / "c"), "--top", "1", "--seeds", "2"]) == 2
    capsys.readouterr()
    assert confirm.main([str(tmp_path / "c"), "--top", "1", "--seeds", "2", "--resume"]) == 0
    assert "over 2 of 2 seeds" in capsys.readouterr().out
    # --resume --seeds 3 adds seed 3 to the 2-seed confirmation: two new runs, the first four kept
    assert confirm.main([str(tmp_path / "c"), "--top", "1", "--seeds", "3", "--resume"]) == 0
    assert "adding seeds to confirm_top1_seeds2's 2" in capsys.readouterr().out
    extended = pd.read_parquet(tmp_path / "c" / "confirm_top1_seeds3" / CONFIRM_FILE)
    assert sorted(zip(extended["config_id"], extended["seed"])) == [
        ("default", 1), ("default", 2), ("default", 3), ("top1", 1), ("top1", 2), ("top1", 3)]
    kept = extended[extended["seed"] < 3].set_index(["config_id", "seed"])["objective"]
    assert kept.equals(runs.set_index(["config_id", "seed"])["objective"])  # not rerun
    assert len(list((tmp_path / "c" / "confirm_top1_seeds3").glob("*/result.json"))) == 2  # Tune ran two
    # --seeds auto on a real comparison (on this test's Ray, not one of its own): the default against
    # a model that barely trains (lr 1e-7), a clear difference, decided before the 7 seeds allowed
    assert compare.main(["hdr_patch", "frozen=default", "default", "--set", "frozen:optim.lr=1e-7", "--seeds", "auto",
                         "--max-seeds", "7", "--smoke-test", "--storage", str(tmp_path), "--name", "auto", "-q"]) == 0
    out = capsys.readouterr().out
    auto = tmp_path / "auto" / "compare_seeds_auto7"
    decided = pd.read_parquet(auto / SUMMARY_FILE).set_index("config_id").loc["default"]
    assert decided["verdict"] == "beats" and decided["pairs"] < 7 and "decided at" in decided["conclusion"]
    assert (auto / "look3").is_dir() and not (auto / "look7").exists() and "--seeds auto stopped at" in out
    # everything a researcher reads afterwards, in the folder: importance, Optuna's plots, report.html
    folder = tmp_path / "c"
    assert (folder / "report.html").exists() and (folder / "optuna_history.png").exists()
    assert '<section id="answer">' in (folder / "report.html").read_text()

    # --resume --trials 4 extends the finished sweep by one trial, in a Tune run of its own, on the
    # same Optuna study; its trials table then holds all four
    assert sweep.main(["--resume", "--name", "c", "--storage", str(tmp_path), "--trials", "4",
                       "--confirm-top", "0"]) == 0
    out = capsys.readouterr().out
    assert "4 trials (adding 1 to its 3)" in out
    extended = pd.read_parquet(folder / "trials.parquet")
    assert len(extended) == 4 and extended["is_default"].sum() == 1
    assert set(trials["trial_id"]) < set(extended["trial_id"])
    meta = json.loads((folder / META_FILE).read_text())
    assert meta["trials"] == 4 and meta["extensions"] == ["extend1"] and meta["finished"]
    from losstune.ray_jobs.results.study import load_study

    assert len(load_study(str(folder)).trials) == 4
