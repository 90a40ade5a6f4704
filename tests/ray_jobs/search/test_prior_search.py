"""--search prior (ray_jobs/search/prior_search.py): piBO through SMAC3 as an Optuna sampler."""

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from losstune.ray_jobs.search.prior_search import Coded, PriorSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_a_log_scaled_number_has_a_normal_prior_at_the_default_over_its_log_range():
    # lr in [1e-4, 1e-1], default 1e-3: mu = ln(1e-3) = -6.9078; the log range ln(1e-1) - ln(1e-4)
    # = 3 ln(10) = 6.9078, so sd = 0.25 x 6.9078 = 1.7269 (medium), 0.5 x = 3.4539 (low), 0.125 x = 0.8635 (high)
    for confidence, sd in (("low", 3.4539), ("medium", 1.7269), ("high", 0.8635)):
        coded = Coded("optim/lr", FloatDistribution(1e-4, 1e-1, log=True), 1e-3, confidence)
        hyperparameter = coded.hyperparameter
        assert hyperparameter.mu == pytest.approx(-6.9078, abs=1e-4)
        assert hyperparameter.sigma == pytest.approx(sd, abs=1e-4)
        assert coded.value(hyperparameter.mu) == pytest.approx(1e-3)


def test_a_choice_weights_the_default_by_the_confidence_and_other_kinds_round_trip():
    coded = Coded("caps/mode", CategoricalDistribution(["A", "B", "C"]), "B", "medium")
    assert list(coded.hyperparameter.weights) == [1.0, 4.0, 1.0]  # medium: 4 against 1
    assert coded.value(coded.code("C")) == "C"
    flag = Coded("caps/clamp_enabled", CategoricalDistribution([False, True]), None, "high")
    assert flag.hyperparameter.weights is None  # a parameter the default lacks: a flat prior
    integer = Coded("model/blocks", IntDistribution(1, 9), 3, "medium")
    # mu 3, sd 0.25 x (9 - 1) = 2
    assert (integer.hyperparameter.mu, integer.hyperparameter.sigma) == (3, 2.0)
    stepped = Coded("train/batch", IntDistribution(8, 64, step=8), 32, "medium")
    assert stepped.value(stepped.code(32)) == 32 and stepped.value(29.0) == 32 and stepped.value(70.0) == 64
    log_int = Coded("model/width", IntDistribution(16, 256, log=True), 64, "medium")
    assert log_int.value(log_int.code(64)) == 64 and isinstance(log_int.value(math.log(100.4)), int)


def branching_space(trial):
    """Mode A (the default, with its threshold) or B (with its scale); a shared rate."""
    if trial.suggest_categorical("mode", ["A", "B"]) == "A":
        trial.suggest_float("threshold", 1.0, 100.0, log=True)
    else:
        trial.suggest_float("scale", 0.0, 1.0)
    trial.suggest_int("depth", 1, 8)


DISTRIBUTIONS = {"mode": CategoricalDistribution(["A", "B"]), "threshold": FloatDistribution(1.0, 100.0, log=True),
                 "scale": FloatDistribution(0.0, 1.0), "depth": IntDistribution(1, 8)}
DEFAULT = {"mode": "A", "threshold": 10.0, "depth": 4}


def sampler(confidence="medium", **kwargs):
    return PriorSampler(DISTRIBUTIONS, DEFAULT, confidence=confidence, trials=kwargs.pop("trials", 20),
                        startup_trials=kwargs.pop("startup_trials", 4), seed=0, **kwargs)


def test_the_prior_draws_gather_at_the_default_and_closer_when_more_confident():
    spread = {}
    for confidence in ("low", "high"):
        draws = sampler(confidence).space.sample_configuration(size=400)
        logs = sorted(c["threshold"] for c in draws)  # SMAC searches a log-scaled number by its logarithm
        spread[confidence] = logs[300] - logs[100]  # the interquartile range
        assert logs[200] == pytest.approx(math.log(10.0), abs=0.35)  # the median at the default
        assert sum(c["mode"] == "0" for c in draws) > 200  # A, the default's branch, weighted
    assert spread["high"] < spread["low"] / 2


def test_a_study_over_a_branching_space_gets_points_of_each_trials_branch_and_tells_smac_every_outcome():
    prior = sampler(startup_trials=2)
    study = optuna.create_study(sampler=prior)
    study.enqueue_trial(DEFAULT)  # the documented default first, as every sweep
    outcomes = []
    for number in range(8):
        trial = study.ask()
        branching_space(trial)
        if number == 0:
            assert trial.params == DEFAULT  # enqueued: SMAC did not pick it, it is told it
        assert ("threshold" in trial.params) == (trial.params["mode"] == "A")
        assert ("scale" in trial.params) == (trial.params["mode"] == "B")
        if number == 3:  # a trial a scheduler stopped: its last reported value
            trial.report(5.0, step=1)
            trial.report(4.0, step=2)
            study.tell(trial, state=TrialState.PRUNED)
        elif number == 4:  # a health check failed it
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, float(trial.params["depth"]))
        outcomes.append(trial.number)
    prior.tell_finished(study)
    history = prior.smac.runhistory
    assert len(history) == 8 and prior.told == set(outcomes)
    costs = sorted(value.cost for value in history.values())
    assert 4.0 in costs  # the stopped trial's last value
    from smac.runhistory.enumerations import StatusType

    assert sum(value.status == StatusType.CRASHED for value in history.values()) == 1


def test_a_maximised_objective_is_told_as_a_negative_cost():
    prior = sampler(direction="maximize")
    study = optuna.create_study(sampler=prior, direction="maximize")
    study.enqueue_trial(DEFAULT)
    trial = study.ask()
    branching_space(trial)
    study.tell(trial, 0.75)
    prior.tell_finished(study)
    assert [value.cost for value in prior.smac.runhistory.values()] == [-0.75]


def test_the_sampler_pickles_as_tune_saves_it_and_tells_the_study_again_when_unpickled():
    import pickle

    prior = sampler()
    study = optuna.create_study(sampler=prior)
    study.enqueue_trial(DEFAULT)
    for _ in range(3):
        trial = study.ask()
        branching_space(trial)
        study.tell(trial, float(trial.params["depth"]))
    again = pickle.loads(pickle.dumps(prior))
    assert again.told == set() and again.coded.keys() == prior.coded.keys()
    again.tell_finished(study)
    assert len(again.smac.runhistory) == 3


def test_trials_smac_did_not_ask_for_are_told_under_its_intensifiers_seed_so_it_keeps_proposing():
    # the default (enqueued) told under another seed than the intensifier's own left SMAC unable to
    # compare a new point with it: with a trial still running, ask looped forever
    prior = sampler(startup_trials=1)
    study = optuna.create_study(sampler=prior)
    study.enqueue_trial(DEFAULT)
    running = []
    for _ in range(5):
        trial = study.ask()
        branching_space(trial)
        running.append(trial)
        if len(running) == 2:  # one trial always running, as under Tune
            done = running.pop(0)
            study.tell(done, float(done.params["depth"]))
    prior.tell_finished(study)
    from smac.runhistory.enumerations import StatusType

    assert {key.seed for key in prior.smac.runhistory} == {prior.seed_of_smac()}
    finished = [value for value in prior.smac.runhistory.values() if value.status != StatusType.RUNNING]
    assert len(finished) == 4 and len(prior.smac.runhistory) == 5  # and the one still running


def test_smac_leaves_the_loggers_of_the_sweep_and_ray_working(caplog):
    import logging

    made_before = logging.getLogger("losstune.ray_jobs.a_sweep_module")  # as the sweep's are, at import
    prior = sampler()
    prior.smac.ask()  # SMAC made, and asked once
    made_before.warning("still heard")
    assert "still heard" in caplog.text and not made_before.disabled
