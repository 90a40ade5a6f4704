"""What the sweep's searcher tells Optuna about each kind of trial ending."""

import optuna
from ray import tune

from losstune.search_spaces import optuna_space
from losstune.trainables.driver import HealthAwareOptunaSearch

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
            searcher.on_trial_result(trial_id, result)
        searcher.on_trial_complete(trial_id, result={**result, **(extra or {})}, error=extra is None)
    trials = searcher._ot_study.trials
    assert [t.state for t in trials] == [State.COMPLETE, State.PRUNED, State.FAIL, State.FAIL]
    assert trials[0].value == 0.25
    # the ASHA-stopped trial keeps its reported epochs (Optuna shows the last as its value); as
    # PRUNED, TPE ranks it behind every trial that ran to the end, whatever that value
    assert trials[1].intermediate_values == {1: 1.0, 2: 0.5} and trials[1].value == 0.5
