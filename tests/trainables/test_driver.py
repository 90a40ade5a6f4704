"""The trial driver's TensorBoard writer."""


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
        callback = TensorBoardCallback({str(tmp_path)!r}, {{"val/log_l1": "Loss/L1_val"}})
        for epoch in (1, 2, 3):
            callback.after_report(None, [{{"epoch": epoch, "val/log_l1": 1.0 / epoch, "stop_reason": ""}}], None)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    subprocess.run([sys.executable, "-c", child], check=False, timeout=120)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("Loss/L1_val")] == [(1, 1.0), (2, 0.5), (3, 0.3333)]
    assert "stop_reason" not in events.Tags()["scalars"]  # strings are not scalars
