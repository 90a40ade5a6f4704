from types import SimpleNamespace

import pytest
from ray.tune.schedulers import TrialScheduler

from losstune.trainables.driver import DefaultKeepingASHA

DEFAULT = {"caps/mode": "A", "caps/abs_max": 16.0}


def trial(trial_id, config):
    return SimpleNamespace(trial_id=trial_id, config=config)


def test_asha_stops_a_poor_trial_but_never_the_documented_default():
    scheduler = DefaultKeepingASHA(DEFAULT, time_attr="training_iteration", max_t=8, grace_period=1,
                                   reduction_factor=2, metric="val/log_l1", mode="min")
    good = trial("good", {"caps": {"mode": "B", "log_delta_scale": 0.4}})
    default = trial("default", {"caps": {"mode": "A", "abs_max": 16.0}})
    poor = trial("poor", {"caps": {"mode": "A", "abs_max": 19.0}})
    for t in (good, default, poor):
        scheduler.on_trial_add(None, t)
    assert scheduler.on_trial_result(None, good, {"training_iteration": 1, "val/log_l1": 1.0}) == TrialScheduler.CONTINUE
    # both worse than the rung's cut: plain ASHA stops both; the default goes on
    assert scheduler.on_trial_result(None, poor, {"training_iteration": 1, "val/log_l1": 5.0}) == TrialScheduler.STOP
    assert scheduler.on_trial_result(None, default, {"training_iteration": 1, "val/log_l1": 5.0}) == TrialScheduler.CONTINUE


def test_the_restart_guard_asks_about_the_driver_only_before_a_restart(monkeypatch):
    import losstune.trainables.driver as driver

    asked = []
    monkeypatch.setattr(driver, "driver_alive", lambda actor_id: asked.append(actor_id) or False)
    guard = driver.NoRestartWithoutDriver("abc")
    guard.before_controller_execute_resize_decision(None)  # the driver's own fit(): no question
    assert asked == []
    with pytest.raises(RuntimeError, match="trial driver abc has exited"):
        guard.before_controller_execute_resize_decision(None)
    assert asked == ["abc"]
    # outside an actor there is no driver to watch: restarts go ahead
    lone = driver.NoRestartWithoutDriver(None)
    for _ in range(2):
        lone.before_controller_execute_resize_decision(None)
    assert asked == ["abc"]


def test_every_reported_epoch_is_in_the_event_file_when_the_controller_is_killed(tmp_path):
    # The Train controller that runs the callback is killed (SIGKILL) when its trial ends or ASHA
    # stops it; nothing closes a writer there. A child process reports three epochs and kills
    # itself; TensorBoard's own reader must find all three.
    import subprocess
    import sys
    import textwrap

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    child = textwrap.dedent(f"""
        import os, signal
        from losstune.trainables.driver import TensorBoardCallback
        callback = TensorBoardCallback({str(tmp_path)!r})
        for epoch in (1, 2, 3):
            callback.after_report(None, [{{"epoch": epoch, "val/log_l1": 1.0 / epoch, "stop_reason": ""}}], None)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    subprocess.run([sys.executable, "-c", child], check=False, timeout=120)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("val/log_l1")] == [(1, 1.0), (2, 0.5), (3, 0.3333)]
    assert "stop_reason" not in events.Tags()["scalars"]  # strings are not scalars
