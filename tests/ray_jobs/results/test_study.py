"""Importance per branch of a space, from a study built by hand."""

import optuna
import pytest

from losstune.ray_jobs.results import study as studies
from losstune.search_spaces import sample_points
from losstune.trainables.registry import load_family


def branching_study(n: int = 24):
    """A space like hdr_patch's caps: mode A has alpha, mode B has scale; the value depends only on
    scale in mode B and on alpha in mode A, never on the shared noise parameter."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_metric_names(["val/loss"])

    def objective(trial):
        trial.suggest_float("noise", 0.0, 1.0)
        if trial.suggest_categorical("mode", ["A", "B"]) == "A":
            return 10 * trial.suggest_float("alpha", 0.0, 1.0)
        return 10 * trial.suggest_float("scale", 0.0, 1.0)

    study.optimize(objective, n_trials=n)
    return study


def test_the_switches_of_hdr_patchs_caps_space_are_its_mode_and_clamp():
    points = sample_points(load_family("hdr_patch").spaces["caps"], 256, 0)
    assert studies.switch_params(points) == ["caps/clamp_enabled", "caps/mode"]


def test_a_continuous_parameter_is_no_switch_in_a_space_that_branches():
    # in `all`, every point has its own lr and loss weights, and Mode A and B points differ in their
    # keys: grouped by lr, each group is one point, whose keys the other groups lack
    points = sample_points(load_family("hdr_patch").spaces["all"], 256, 0)
    assert studies.switch_params(points) == ["caps/clamp_enabled", "caps/mode"]


def test_a_parameter_that_switches_nothing_is_no_switch():
    points = [{"mode": "A", "alpha": 1, "flag": True}, {"mode": "A", "alpha": 2, "flag": False},
              {"mode": "B", "scale": 1, "flag": True}, {"mode": "B", "scale": 3, "flag": False}]
    assert studies.switch_params(points) == ["mode"]


def test_fanova_per_branch_weighs_the_conditional_parameters_that_the_whole_study_leaves_out():
    table = studies.importance(branching_study(), "val/loss", ["mode"])
    whole = table[(table["evaluator"] == "fanova") & (table["branch"] == "all")]
    assert set(whole["param"]) == {"noise", "mode"}  # alpha and scale are not in every trial
    for branch, param in (("mode=A", "alpha"), ("mode=B", "scale")):
        rows = table[(table["evaluator"] == "fanova") & (table["branch"] == branch)].set_index("param")
        assert set(rows.index) == {"noise", param}  # the switch itself is constant in its branch
        assert rows.loc[param, "importance"] > 0.8 > rows.loc["noise", "importance"]
    default = table[table["evaluator"] == "ped_anova"]
    assert {"alpha", "scale", "noise", "mode"} <= set(default["param"])  # PED-ANOVA weighs conditionals
    assert (table.groupby(["evaluator", "branch"])["n_trials"].nunique() == 1).all()


def test_a_branch_with_too_few_trials_is_left_out_and_the_summary_says_so():
    study = branching_study(4)
    table = studies.importance(study, "val/loss", ["mode"])
    assert all(n >= studies.MIN_TRIALS for n in table["n_trials"])
    assert "fewer than" in studies.summary(table.iloc[0:0])


def test_an_objective_that_is_the_same_in_every_trial_has_no_importance_and_the_summary_says_so():
    # a sweep whose trials all end alike (a smoke run too short to move the objective): fANOVA
    # raises "zero total variance" on it, which ended the sweep before its results were written
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_metric_names(["val/loss"])
    study.optimize(lambda trial: 0.5 + 0 * trial.suggest_float("x", 0.0, 1.0), n_trials=5)
    table = studies.importance(study, "val/loss")
    assert table.empty and "the objective is the same in all of them" in studies.summary(table)
    # values apart in their ninth digit (a real npt smoke sweep's): fANOVA's forest sees no
    # variance either and raises; PED-ANOVA still ranks them
    nearly = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    nearly.optimize(lambda trial: 0.0056766 + 1e-11 * trial.suggest_float("x", 0.0, 1.0), n_trials=5)
    table = studies.importance(nearly, "")
    assert set(table["evaluator"]) == {"ped_anova"}


@pytest.mark.parametrize("names", [["val/a", "val/b"], ["val/b", "val/a"]])
def test_the_scalar_objective_is_found_among_several(names):
    study = optuna.create_study(directions=["minimize", "minimize"])
    study.set_metric_names(names)
    assert studies.objective_index(study, "val/b") == names.index("val/b")


def test_space_switches_reads_the_sweeps_space_with_the_values_each_switch_takes():
    meta = {"family": "hdr_patch", "space": "caps", "base": {}, "seed": 0}
    assert studies.space_switches(meta) == {"caps/clamp_enabled": [False, True], "caps/mode": ["A", "B"]}
