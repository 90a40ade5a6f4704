"""The Ray workarounds that need no Ray running (the others: test_ray_workarounds_*.py)."""

import pytest


def test_the_restart_guard_asks_about_the_driver_only_before_a_restart(monkeypatch):
    import losstune.trainables.ray_workarounds as workarounds

    asked = []
    monkeypatch.setattr(workarounds, "driver_alive", lambda actor_id: asked.append(actor_id) or False)
    guard = workarounds.NoRestartWithoutDriver("abc")
    guard.before_controller_execute_resize_decision(None)  # the driver's own fit(): no question
    assert asked == []
    with pytest.raises(RuntimeError, match="trial driver abc has exited"):
        guard.before_controller_execute_resize_decision(None)
    assert asked == ["abc"]
    # outside an actor there is no driver to watch: restarts go ahead
    lone = workarounds.NoRestartWithoutDriver(None)
    for _ in range(2):
        lone.before_controller_execute_resize_decision(None)
    assert asked == ["abc"]
