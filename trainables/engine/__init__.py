"""The engine every family trains in: the one loop (loop.py) and its session seam to whatever
runs it (session.py; Ray Train's in ray_session.py, Tune's in tune_session.py), checkpoints,
optimiser groups, schedules and optimiser tricks, and the Tune trainable that starts a run
(driver.py). Nothing here knows a family by name."""
