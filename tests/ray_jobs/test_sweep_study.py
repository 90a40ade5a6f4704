"""The sweep's Optuna study after a killed driver: no trial left looking alive."""

import optuna
import pytest

from ray_jobs import sweep


def test_orphaned_running_trials_become_fail(tmp_path):
    plan = {"name": "s", "storage": str(tmp_path)}
    study = optuna.create_study(study_name="s", storage=sweep.study_storage(plan))
    done = study.ask()
    study.tell(done, 1.0)
    study.ask()  # asked by a driver that was killed before Tune saved the trial
    assert sweep.fail_orphaned_trials(plan) == 1
    states = [t.state for t in optuna.load_study(study_name="s", storage=sweep.study_storage(plan)).trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    assert sweep.fail_orphaned_trials(plan) == 0


def test_resume_reads_a_sweep_saved_before_later_keys(tmp_path):
    import json

    from ray_jobs.results import META_FILE

    plan = sweep.make_plan(sweep.parse_args(["hdr_patch", "--storage", str(tmp_path), "--name", "old"]))
    meta = sweep.metadata(plan)
    for key in sweep.LATER_KEYS:  # a sweep saved before these keys existed
        meta.pop(key)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / META_FILE).write_text(json.dumps(meta))
    resumed = sweep.make_plan(sweep.parse_args(["--storage", str(tmp_path), "--name", "old", "--resume"]))
    assert resumed["objectives"] == [] and resumed["grace_epochs"] is None
    assert resumed["default_point"] == plan["default_point"] and resumed["resume"]
    assert resumed["startup_trials"] == 10  # Optuna's default, which sweeps saved before the key ran with


@pytest.mark.parametrize("argv, startup", [(["--trials", "8"], 2), (["--trials", "32"], 8), (["--trials", "128"], 10),
                                           (["--trials", "4"], 2), (["--trials", "8", "--startup-trials", "5"], 5)])
def test_tpe_samples_a_quarter_of_the_trials_at_random(tmp_path, argv, startup):
    plan = sweep.make_plan(sweep.parse_args(["hdr_patch", "--storage", str(tmp_path), *argv]))
    assert plan["startup_trials"] == startup
    assert sweep.make_sampler(plan)._n_startup_trials == startup
