"""The sweep's Optuna study after a killed driver: no trial left looking alive."""

import optuna

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
