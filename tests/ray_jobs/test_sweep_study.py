"""The sweep's Optuna study after a killed driver: no trial left looking alive."""

import optuna
import pytest

from losstune.ray_jobs.core import plan as sweep_plan
from losstune.ray_jobs.cli import sweep_flags
from losstune.ray_jobs.search import study_journal, tuning


def test_orphaned_running_trials_become_fail(tmp_path):
    study = optuna.create_study(study_name="s", storage=study_journal.study_storage(str(tmp_path), "s"))
    done = study.ask()
    study.tell(done, 1.0)
    study.ask()  # asked by a driver that was killed before Tune saved the trial
    assert study_journal.fail_orphaned_trials(str(tmp_path), "s") == 1
    states = [t.state for t in optuna.load_study(study_name="s", storage=study_journal.study_storage(str(tmp_path), "s")).trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    assert study_journal.fail_orphaned_trials(str(tmp_path), "s") == 0


def test_resume_reads_a_sweep_saved_before_later_keys(tmp_path):
    import json

    from losstune.ray_jobs.results.tables import META_FILE
    from tests.ray_jobs.test_sweep_cli import as_started

    plan = sweep_flags.make_plan(sweep_flags.parse_args(["hdr_patch", "--storage", str(tmp_path), "--name", "old"]))
    meta = sweep_plan.metadata(plan)
    for key in sweep_plan.LATER_FIELDS:  # a sweep saved before these keys existed
        meta.pop(key)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / META_FILE).write_text(json.dumps(meta))
    as_started(tmp_path / "old")
    resumed = sweep_flags.make_plan(sweep_flags.parse_args(["--storage", str(tmp_path), "--name", "old", "--resume"]))
    assert resumed.objectives == [] and resumed.grace_epochs is None
    assert resumed.default_point == plan.default_point and resumed.resume
    assert resumed.startup_trials == 10  # Optuna's default, which sweeps saved before the key ran with


@pytest.mark.parametrize("argv, startup", [(["--trials", "8"], 2), (["--trials", "32"], 8), (["--trials", "128"], 10),
                                           (["--trials", "4"], 2), (["--trials", "8", "--startup-trials", "5"], 5)])
def test_tpe_samples_a_quarter_of_the_trials_at_random(tmp_path, argv, startup):
    plan = sweep_flags.make_plan(sweep_flags.parse_args(["hdr_patch", "--storage", str(tmp_path), *argv]))
    assert plan.startup_trials == startup
    assert tuning.make_sampler(plan)._n_startup_trials == startup



def _suggestions(tmp_path, search: str, trials: int = 8) -> list[dict]:
    """Params of `trials` Optuna trials on hdr_patch `all` (a space with branches), sampled by the
    sweep's sampler for --search `search`, on an objective that prefers lr near 5e-3."""
    from losstune.search_spaces import optuna_space
    from losstune.trainables.registry import load_family

    plan = sweep_flags.make_plan(sweep_flags.parse_args(["hdr_patch", "--space", "all", "--search", search, "--storage",
                                             str(tmp_path), "--name", search, "--startup-trials", "3"]))
    space = optuna_space(load_family("hdr_patch").spaces["all"])
    assert callable(space)  # define-by-run: mode A and B sample different caps

    def objective(trial):
        space(trial)
        return abs(trial.params["optim/lr"] - 5e-3)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=tuning.make_sampler(plan))
    study.optimize(objective, n_trials=trials)
    return [t.params for t in study.trials]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_grouped_search_models_each_branch_jointly(tmp_path):
    plain, grouped = _suggestions(tmp_path, "optuna"), _suggestions(tmp_path, "optuna-grouped")
    # The same seed draws the same random startup trials...
    assert grouped[:3] == plain[:3]
    # ...and then each its own: the plain TPE models jointly only what every trial has and samples
    # a branch's parameters (mode B's log_delta_scale, ...) one by one; grouped models them together.
    assert grouped[4:] != plain[4:]
