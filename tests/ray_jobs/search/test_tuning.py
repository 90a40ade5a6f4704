"""What the sweep's searcher tells Optuna about each kind of trial ending, and the ASHA that
never stops the documented default."""

from types import SimpleNamespace

import optuna
from ray import tune
from ray.tune.schedulers import TrialScheduler

import pytest

from losstune.ray_jobs.search.schedulers import DefaultKeepingASHA
from losstune.ray_jobs.search.health_aware_search import HealthAwareOptunaSearch
from losstune.ray_jobs.search.tuning import make_sampler
from losstune.search_spaces import optuna_space

State = optuna.trial.TrialState


def test_completed_pruned_and_failed_trials():
    searcher = HealthAwareOptunaSearch(space=optuna_space({"x": tune.uniform(0, 1)}), metric="val/loss", mode="min",
                                       sampler=optuna.samplers.RandomSampler(seed=0), full_length=4)
    endings = {  # trial id: (epochs reported, how it ended)
        "full": (4, {}), "asha": (2, {}), "unhealthy": (3, {"stop_reason": "nonfinite_loss"}), "crashed": (1, None)}
    for trial_id, (epochs, extra) in endings.items():
        searcher.suggest(trial_id)
        for epoch in range(1, epochs + 1):
            result = {"val/loss": 1.0 / epoch, "epoch": epoch, "training_iteration": epoch}
            if epoch < epochs:  # as Tune does: a trial's last result goes to on_trial_complete only
                searcher.on_trial_result(trial_id, result)
        searcher.on_trial_complete(trial_id, result={**result, **(extra or {})}, error=extra is None)
    trials = searcher._ot_study.trials
    assert [t.state for t in trials] == [State.COMPLETE, State.PRUNED, State.PRUNED, State.FAIL]
    assert trials[0].value == 0.25
    # the ASHA-stopped trial keeps its reported epochs (Optuna shows the last as its value); as
    # PRUNED, TPE ranks it behind every trial that ran to the end, whatever that value
    assert trials[1].intermediate_values == {1: 1.0, 2: 0.5} and trials[1].value == 0.5
    # the unhealthy one is infeasible: ranked behind every feasible trial, never a best
    assert trials[2].constraints == {"healthy": 1.0} and trials[2].user_attrs["stop_reason"] == "nonfinite_loss"
    assert trials[1].constraints == {} and searcher._ot_study.best_trial.number == 0
    # every epoch is an intermediate value, the last included; each trial says which Tune trial it
    # is and how it ended (optuna-dashboard shows both)
    assert trials[0].intermediate_values == {1: 1.0, 2: 0.5, 3: 1 / 3, 4: 0.25}
    assert [t.user_attrs["tune_trial_id"] for t in trials] == list(endings)
    assert [t.user_attrs["ended"] for t in trials] == [
        "completed", "stopped by the scheduler at epoch 2 of 4", "stopped unhealthy at epoch 3: nonfinite_loss",
        "errored"]
    assert not any(t.user_attrs["documented_default"] for t in trials)  # none was the enqueued default


def unhealthy_above(threshold: float):
    """A sweep's end of trial `trial_id` with settings `config`: the health check stops every trial
    whose x is above `threshold` at epoch 1; the others run 2 epochs, the loss falling with x."""
    def end(searcher, trial_id: str, config: dict) -> None:
        unhealthy = config["x"] > threshold
        for epoch in (1,) if unhealthy else (1, 2):
            result = {"val/loss": config["x"] / epoch, "epoch": epoch, "training_iteration": epoch}
            searcher.on_trial_result(trial_id, result)
        searcher.on_trial_complete(trial_id, result={**result, "stop_reason": "loss_imbalance" if unhealthy else ""})
    return end


def test_tpe_learns_to_leave_the_region_where_trials_stop_unhealthy():
    # x above 0.3 stops unhealthy (70% of the space), the loss is lowest towards x = 0.3. Told FAIL
    # (before), TPE ignored those trials: with 5 start-up trials it needed 5 healthy ones to start
    # modelling, and drew from the whole space until then: 15 of trials 11-30 unhealthy at this
    # seed. Infeasible, they count as seen and as worse than every healthy trial: 3 of 20 (2-3 at
    # seeds 0-4).
    searcher = HealthAwareOptunaSearch(space=optuna_space({"x": tune.uniform(0, 1)}), metric="val/loss", mode="min",
                                       sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5), full_length=2)
    end = unhealthy_above(0.3)
    for number in range(30):
        end(searcher, f"t{number}", searcher.suggest(f"t{number}"))
    trials = searcher._ot_study.trials
    after_startup = [t.params["x"] > 0.3 for t in trials[10:]]
    assert sum(after_startup) <= 6, [round(t.params["x"], 2) for t in trials]  # of 20; at random, 14
    assert all(t.state == State.PRUNED and t.constraints for t in trials if t.params["x"] > 0.3)


def test_under_cmaes_an_unhealthy_trial_stays_failed():
    # CMA-ES knows no constraints and ranks a pruned trial by its last value: it is not told one
    plan = SimpleNamespace(search="cmaes", seed=0, startup_trials=2)
    searcher = HealthAwareOptunaSearch(space=optuna_space({"x": tune.uniform(0, 1), "y": tune.uniform(0, 1)}),
                                       metric="val/loss", mode="min", sampler=make_sampler(plan), full_length=2)
    end = unhealthy_above(0.5)
    for number in range(6):
        end(searcher, f"t{number}", searcher.suggest(f"t{number}"))
    for trial in searcher._ot_study.trials:
        unhealthy = trial.params["x"] > 0.5
        assert trial.state == (State.FAIL if unhealthy else State.COMPLETE) and not trial.constraints
        assert trial.user_attrs.get("stop_reason") == ("loss_imbalance" if unhealthy else None)


def test_a_trial_resumed_after_optuna_was_told_its_end_changes_nothing():
    # the sweep's driver was killed after Optuna recorded trial t's end but before Tune saved it:
    # on --resume the searcher's state is the one saved before the end, and t reports its end again
    searcher = HealthAwareOptunaSearch(space=optuna_space({"x": tune.uniform(0, 1)}), metric="val/loss", mode="min",
                                       sampler=optuna.samplers.RandomSampler(seed=0), full_length=2)
    searcher.suggest("t")
    saved = set(searcher._completed_trials)  # the searcher state Tune had saved
    for epoch in (1, 2):
        searcher.on_trial_result("t", {"val/loss": 0.5 / epoch, "epoch": epoch, "training_iteration": epoch})
    searcher.on_trial_complete("t", result={"val/loss": 0.25, "epoch": 2})
    searcher._completed_trials = saved  # resumed
    searcher.on_trial_result("t", {"val/loss": 0.25, "epoch": 2, "training_iteration": 3})  # raised before
    searcher.on_trial_complete("t", result={"val/loss": 0.25, "epoch": 2})
    (trial,) = searcher._ot_study.trials
    assert trial.state == State.COMPLETE and trial.value == 0.25 and trial.intermediate_values == {1: 0.5, 2: 0.25}


@pytest.mark.parametrize("search, sampler", [("gp", optuna.samplers.GPSampler),
                                             ("cmaes", optuna.samplers.CmaEsSampler)])
def test_gp_and_cmaes_see_the_pruned_trials_as_pruned(search, sampler):
    # the same searcher as TPE's: a trial ASHA stopped is PRUNED for GP and CMA-ES too
    plan = SimpleNamespace(search=search, seed=0, startup_trials=2)
    searcher = HealthAwareOptunaSearch(space=optuna_space({"x": tune.uniform(0, 1), "y": tune.loguniform(1e-3, 1)}),
                                       metric="val/loss", mode="min", sampler=make_sampler(plan), full_length=4)
    assert isinstance(searcher._sampler, sampler)
    for number in range(5):
        trial_id = f"t{number}"
        config = searcher.suggest(trial_id)
        epochs = 4 if number % 2 == 0 else 2  # every other trial stopped at epoch 2
        for epoch in range(1, epochs + 1):
            searcher.on_trial_result(trial_id, {"val/loss": config["x"] / epoch, "epoch": epoch,
                                                "training_iteration": epoch})
        searcher.on_trial_complete(trial_id, result={"val/loss": config["x"] / epochs, "epoch": epochs})
    states = [t.state for t in searcher._ot_study.trials]
    assert states == [State.COMPLETE, State.PRUNED, State.COMPLETE, State.PRUNED, State.COMPLETE]
    assert len({t.params["x"] for t in searcher._ot_study.trials}) == 5  # past its startup, it samples on


DEFAULT = {"caps/mode": "A", "caps/abs_max": 16.0}


def asha_trial(trial_id, config):
    return SimpleNamespace(trial_id=trial_id, config=config)


def test_asha_stops_a_poor_trial_but_never_the_documented_default():
    scheduler = DefaultKeepingASHA(DEFAULT, time_attr="training_iteration", max_t=8, grace_period=1,
                                   reduction_factor=2, metric="val/log_l1", mode="min")
    good = asha_trial("good", {"caps": {"mode": "B", "log_delta_scale": 0.4}})
    default = asha_trial("default", {"caps": {"mode": "A", "abs_max": 16.0}})
    poor = asha_trial("poor", {"caps": {"mode": "A", "abs_max": 19.0}})
    for t in (good, default, poor):
        scheduler.on_trial_add(None, t)
    assert scheduler.on_trial_result(None, good, {"training_iteration": 1, "val/log_l1": 1.0}) == TrialScheduler.CONTINUE
    # both worse than the rung's cut: plain ASHA stops both; the default goes on
    assert scheduler.on_trial_result(None, poor, {"training_iteration": 1, "val/log_l1": 5.0}) == TrialScheduler.STOP
    assert scheduler.on_trial_result(None, default, {"training_iteration": 1, "val/log_l1": 5.0}) == TrialScheduler.CONTINUE


def end_trial(searcher, trial_id: str, epochs: int, loss: float, stop_reason: str = "") -> None:
    for epoch in range(1, epochs + 1):
        result = {"val/loss": loss, "epoch": epoch, "training_iteration": epoch}
        searcher.on_trial_result(trial_id, result)
    searcher.on_trial_complete(trial_id, result={**result, "stop_reason": stop_reason})


def test_a_draw_that_repeats_a_trained_config_is_told_its_result_and_not_trained(caplog):
    # three configs of choices alone; every trial trains at the sweep's seed, so a repeat would
    # only repeat its result. "a" completes (0.5), "b" stops unhealthy, "c" completes (0.2)
    searcher = HealthAwareOptunaSearch(space=optuna_space({"c": tune.choice(["a", "b", "c"])}), metric="val/loss",
                                       mode="min", sampler=optuna.samplers.RandomSampler(seed=0), full_length=2)
    outcome = {"a": (2, 0.5, ""), "b": (1, 9.0, "loss_imbalance"), "c": (2, 0.2, "")}
    trained = []
    for trial_id in ("t1", "t2", "t3"):
        config = searcher.suggest(trial_id)["c"]
        trained.append(config)
        end_trial(searcher, trial_id, *outcome[config])
    assert sorted(trained) == ["a", "b", "c"]  # each config trained once
    study = searcher._ot_study
    repeats = [t for t in study.trials if "repeat_of" in t.user_attrs]
    assert repeats  # the random sampler drew trained configs on the way
    for repeat in repeats:  # told as the trial it repeats ended
        earlier = study.trials[repeat.user_attrs["repeat_of"]]
        assert repeat.params == earlier.params and repeat.state == earlier.state and repeat.values == earlier.values
        assert repeat.constraints == earlier.constraints
    unhealthy = [t for t in repeats if t.params == {"c": "b"}]
    assert all(t.user_attrs["stop_reason"] == "loss_imbalance" and t.constraints == {"healthy": 1.0} for t in unhealthy)
    from losstune.ray_jobs.results.study import completed, stopped_unhealthy
    assert sorted(t.params["c"] for t in completed(study)) == ["a", "c"]  # importance and plots see each once
    assert [t.params["c"] for t in stopped_unhealthy(study)] == ["b"]
    # nothing new is left: after REDRAWS repeats in a row the next draw trains again
    assert searcher.suggest("t4")["c"] in ("a", "b", "c")
    assert "t4: 32 draws in a row repeated trained configs; training the next one again" in caplog.text


def test_the_default_an_enqueued_point_and_a_config_asha_stopped_train_again():
    searcher = HealthAwareOptunaSearch(space=optuna_space({"c": tune.choice(["a", "b"])}), metric="val/loss",
                                       mode="min", sampler=optuna.samplers.RandomSampler(seed=0), full_length=2,
                                       points_to_evaluate=[{"c": "a"}, {"c": "a"}], default_point={"c": "a"})
    for trial_id in ("default", "enqueued"):  # the default, then an --enqueue point: run as asked
        assert searcher.suggest(trial_id) == {"c": "a"}
        end_trial(searcher, trial_id, 2, 0.5)
    # the first is the documented default; the --enqueue point with its values is not
    assert [t.user_attrs["documented_default"] for t in searcher._ot_study.trials] == [True, False]
    searcher = HealthAwareOptunaSearch(space=optuna_space({"c": tune.choice(["a"])}), metric="val/loss",
                                       mode="min", sampler=optuna.samplers.RandomSampler(seed=0), full_length=2)
    searcher.suggest("stopped")
    end_trial(searcher, "stopped", 1, 0.5)  # ASHA stopped it at epoch 1: that depended on the others
    assert searcher.suggest("again") == {"c": "a"}
    assert not any("repeat_of" in t.user_attrs for t in searcher._ot_study.trials)
