"""The trials' TensorBoard writer (trainables/engine/tensorboard.py)."""


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
        from losstune.trainables.engine.tensorboard import TensorBoardCallback
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


def test_each_trial_writes_tensorboard_hparams_of_its_config_and_objective(tmp_path):
    # TensorBoard's HParams plugin compares trials by the session-start record of each run's config
    # and reads the metric from the scalars under the experiment's metric tag: both must be there.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    from losstune.trainables.engine.tensorboard import TensorBoardCallback, hparams_of

    config = {"caps": {"mode": "B", "log_delta_scale": 0.5}, "model": {"output_norm": True}}
    hparams = hparams_of(config, "Loss/L1_val")
    callback = TensorBoardCallback(str(tmp_path), {"val/log_l1": "Loss/L1_val"}, hparams)
    callback.after_report(None, [{"epoch": 1, "val/log_l1": 0.75}], None)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    records = {tag: HParamsPluginData.FromString(content) for tag, content in events.PluginTagToContent("hparams").items()}
    start = records["_hparams_/session_start_info"].session_start_info.hparams
    assert {name: value.WhichOneof("kind") for name, value in start.items()} == {
        "caps/mode": "string_value", "caps/log_delta_scale": "number_value", "model/output_norm": "bool_value"}
    assert start["caps/mode"].string_value == "B" and start["caps/log_delta_scale"].number_value == 0.5
    metrics = records["_hparams_/experiment"].experiment.metric_infos
    assert [m.name.tag for m in metrics] == ["Loss/L1_val"]
    assert [e.value for e in events.Scalars("Loss/L1_val")] == [0.75]
