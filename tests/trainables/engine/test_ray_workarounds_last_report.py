"""A trial whose training function returns right after Train's last report must still hand that
report to Tune (see trainables.engine.ray_workarounds.wait_until_tune_took_the_last_report).

The trial function below does what TuneReportCallback does from Train's controller: it puts its
reports on the trial's inter-actor queue, then returns at once. Without the wait, Ray 2.60's trial
actor deadlocks on the last report (the trial stays RUNNING with one iteration; a script doing this
hung until killed on every run, and ran clean with a 5 s pause before returning)."""

import pytest

from losstune.trainables.engine.ray_workarounds import wait_until_tune_took_the_last_report

pytestmark = pytest.mark.integration


def two_reports_then_return(config):
    from ray.train._internal.session import get_session

    queue = get_session()._get_or_create_inter_actor_queue()
    for epoch in (1, 2):
        queue.put({"epoch": epoch})
    wait_until_tune_took_the_last_report(timeout_s=30)


def test_the_last_report_reaches_tune_when_the_function_returns_at_once(local_ray, tmp_path):
    from ray import tune

    # time_budget_s ends the experiment if the trial hangs, so that a regression fails, not hangs
    tuner = tune.Tuner(tune.with_resources(two_reports_then_return, {"CPU": 0.1}), param_space={},
                       tune_config=tune.TuneConfig(num_samples=1, time_budget_s=60),
                       run_config=tune.RunConfig(storage_path=str(tmp_path), name="last", verbose=0))
    result = tuner.fit()[0]
    assert result.error is None
    assert result.metrics["epoch"] == 2 and result.metrics["training_iteration"] == 2
