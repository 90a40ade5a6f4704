"""--enqueue and --warm-start: checked against the new sweep's space before Ray starts; a warm start
gives the earlier sweep's fitting trials to the new study as prior trials."""

import json

import optuna
import pytest

from losstune.ray_jobs.search import prior_points
from losstune.ray_jobs import sweep
from losstune.ray_jobs.cli import sweep_flags
from losstune.ray_jobs.core.usage import UsageError
from losstune.ray_jobs.results.study import HEALTH_CONSTRAINT, completed, load_study, stopped_unhealthy
from losstune.ray_jobs.search.health_aware_search import HealthAwareOptunaSearch
from losstune.search_spaces import optuna_space, space_distributions
from losstune.trainables.registry import load_family

from tests.ray_jobs.sweep_folder import METRIC, write_sweep
from tests.ray_jobs.test_sweep_cli import ray_starts  # noqa: F401 (autouse: Ray must never start)

CAPS = load_family("hdr_patch").spaces["caps"]


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    folder = tmp_path_factory.mktemp("earlier") / "hdr_patch-caps-earlier"
    write_sweep(folder, trials=8)
    return folder


def write(tmp_path, content) -> str:
    path = tmp_path / "configs.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_enqueued_configs_may_be_nested_or_flat(tmp_path):
    path = write(tmp_path, [{"caps": {"mode": "B", "log_delta_scale": 0.5}}, {"caps/mode": "A"}])
    assert prior_points.read_enqueued(path, CAPS, "caps") == [{"caps/mode": "B", "caps/log_delta_scale": 0.5},
                                                              {"caps/mode": "A"}]


@pytest.mark.parametrize("content, expected", [
    ("[{", "--enqueue: {path}: not a JSON file (Expecting"),
    ({"caps/mode": "B"}, "--enqueue: {path} must hold a JSON list of configs"),
    ([{"caps/bogus": 1}], "--enqueue: {path} config 1: caps/bogus is not a parameter of space 'caps'"),
    ([{"caps/mode": "A"}, {"caps/mode": "C"}], "--enqueue: {path} config 2: caps/mode='C' is not one of ['A', 'B']"),
    ([{"caps/mode": "B", "caps/log_delta_scale": 9.0}], "caps/log_delta_scale=9.0 is outside [0.3, 1.5]"),
])
def test_an_enqueue_file_outside_the_space_is_refused_naming_flag_file_and_config(tmp_path, content, expected):
    path = write(tmp_path, content)
    with pytest.raises(UsageError) as err:
        prior_points.read_enqueued(path, CAPS, "caps")
    assert expected.format(path=path) in str(err.value)


def test_the_sweep_refuses_more_enqueued_configs_than_trials_before_ray_starts(tmp_path, capsys):
    path = write(tmp_path, [{"caps/mode": "A"}, {"caps/mode": "B"}])
    code = sweep.main(["--storage", str(tmp_path / "results"), "--trials", "2", "--enqueue", path])
    assert code == 2 and "--enqueue: 2 configs and the documented default are more than --trials 2" in capsys.readouterr().err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_the_plan_runs_the_enqueued_configs_after_the_default(tmp_path):
    path = write(tmp_path, [{"caps/mode": "B", "caps/log_delta_scale": 0.5}])
    plan = sweep_flags.make_plan(sweep_flags.parse_args(["--enqueue", path, "--storage", str(tmp_path)]))
    assert plan.enqueued == [{"caps/mode": "B", "caps/log_delta_scale": 0.5}]


def test_a_warm_start_gives_the_fitting_trials_of_an_earlier_sweep(earlier, tmp_path):
    plan = sweep_flags.make_plan(sweep_flags.parse_args(["--warm-start", str(earlier), "--storage", str(tmp_path)]))
    # the same space: all fit
    assert plan.warm_start == {"sweep": str(earlier), "used": 8, "unhealthy": 0, "completed": 8}
    searcher = HealthAwareOptunaSearch(space=optuna_space(CAPS), metric=METRIC, mode="min", priors=plan.priors,
                                       prior_space=CAPS, points_to_evaluate=[plan.default_point])
    searcher._setup_study("min")  # what Tune's set_search_properties does at the sweep's start
    study = searcher._ot_study
    assert study.metric_names == [METRIC]
    prior = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.value for t in prior) == sorted(p["values"][0] for p in plan.priors)
    assert study.trials[0].state == optuna.trial.TrialState.WAITING  # the default still runs first


def test_a_warm_start_gives_the_trials_health_checks_stopped_as_infeasible_and_no_other_stopped_trial(tmp_path):
    folder = tmp_path / "hdr_patch-caps-stopped"
    write_sweep(folder, trials=4)
    study = load_study(str(folder))
    params = study.trials[1].params
    distributions = {k: space_distributions(CAPS)[0][k] for k in params}
    stopped = dict(state=optuna.trial.TrialState.PRUNED, params=params, distributions=distributions)
    # as the sweep tells them (health_aware_search.HealthAwareOptunaSearch): stopped unhealthy, stopped by ASHA, failed
    study.add_trial(optuna.trial.create_trial(**stopped, user_attrs={"stop_reason": "loss_imbalance"},
                                              constraints={HEALTH_CONSTRAINT: 1.0}))
    study.add_trial(optuna.trial.create_trial(**stopped))
    study.add_trial(optuna.trial.create_trial(**stopped | {"state": optuna.trial.TrialState.FAIL}))
    plan = sweep_flags.make_plan(sweep_flags.parse_args(["--warm-start", str(folder), "--storage", str(tmp_path)]))
    assert plan.warm_start == {"sweep": str(folder), "used": 4, "unhealthy": 1, "completed": 4}
    searcher = HealthAwareOptunaSearch(space=optuna_space(CAPS), metric=METRIC, mode="min", priors=plan.priors,
                                       prior_space=CAPS, points_to_evaluate=[plan.default_point])
    searcher._setup_study("min")
    # the new study holds it as the earlier one did: what TPE puts behind every feasible trial
    [prior] = stopped_unhealthy(searcher._ot_study)
    assert prior.params == params and prior.user_attrs == {"stop_reason": "loss_imbalance", "warm_start": True}
    assert len(completed(searcher._ot_study)) == 4
    here = {"family": "hdr_patch", "objective": {"metric": METRIC, "mode": "min"}, "objectives": []}
    priors, _ = prior_points.read_warm_start(str(folder), here, CAPS, unhealthy=False)  # for CMA-ES
    assert len(priors) == 4 and not any("stop_reason" in p for p in priors)


def test_only_trials_that_fit_the_new_space_are_given(earlier):
    weights = load_family("hdr_patch").spaces["weights"]  # other parameters: no caps trial fits
    here = {"family": "hdr_patch", "objective": {"metric": METRIC, "mode": "min"}, "objectives": []}
    assert prior_points.read_warm_start(str(earlier), here, weights) == ([], 8)


@pytest.mark.parametrize("here, expected", [
    ({"family": "npt", "objective": {"metric": METRIC, "mode": "min"}}, "is a sweep of hdr_patch, not npt"),
    ({"family": "hdr_patch", "objective": {"metric": METRIC, "mode": "max"}}, "ranks by [('val/log_l1', 'min')]"),
])
def test_a_warm_start_from_another_family_or_objective_is_refused(earlier, here, expected):
    with pytest.raises(UsageError, match="--warm-start: ") as err:
        prior_points.read_warm_start(str(earlier), here, CAPS)
    assert expected in str(err.value)


def test_a_warm_start_from_a_damaged_journal_names_it(earlier, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(earlier, folder)
    (folder / "optuna_study.journal").write_bytes(b"")  # was an IndexError traceback
    here = {"family": "hdr_patch", "objective": {"metric": METRIC, "mode": "min"}, "objectives": []}
    with pytest.raises(UsageError, match=r"--warm-start: .*optuna_study.journal: the Optuna journal holds no study"):
        prior_points.read_warm_start(str(folder), here, CAPS)


def test_a_warm_start_from_a_folder_that_is_no_sweep_exits_2_before_ray(tmp_path, capsys):
    code = sweep.main(["--storage", str(tmp_path / "results"), "--warm-start", str(tmp_path)])
    assert code == 2 and f"--warm-start: {tmp_path}: not a losstune sweep" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--enqueue", "--warm-start", "--config"])
def test_resume_refuses_flags_that_define_a_new_sweep(tmp_path, flag):
    with pytest.raises(UsageError, match=f"{flag}: a resumed sweep keeps what it was started with"):
        sweep_flags.make_plan(sweep_flags.parse_args(["--resume", "--name", "x", flag, "f.json",
                                                      "--storage", str(tmp_path)]))
