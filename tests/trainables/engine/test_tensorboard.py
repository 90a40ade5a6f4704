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


def test_tensorboard_compares_runs_of_both_branches_over_every_parameter_of_the_space(tmp_path):
    # Each run declares its own values only; the sweep declares its space's parameters once. Read by
    # TensorBoard's own HParams plugin, the experiment has all twelve (both branches of hdr_patch's
    # `caps` and the seed) and each run's row its own values and its last epoch's objective.
    from losstune.search_spaces import space_distributions
    from losstune.search_spaces.hdr_patch import caps
    from losstune.trainables.engine.tensorboard import (EpochEvents, event_file_bytes, experiment_summary,
                                                        hparams_of)
    from tests.tensorboard_view import hparams_view

    name, contents = event_file_bytes([experiment_summary(space_distributions(caps)[0], ["Loss/L1_val"])])
    (tmp_path / name).write_bytes(contents)
    mode_b = {"caps": {"mode": "B", "log_delta_scale": 0.5}, "model": {"output_norm": True}}
    mode_a = {"caps": {"mode": "A", "abs_max": 6.0, "alpha": 1.0, "clamp_enabled": False},
              "model": {"learnable_scale": False, "adaptive_scaler": False}}
    for run, (point, seed) in {"b": (mode_b, 0), "a": (mode_a, 3)}.items():
        events = EpochEvents(str(tmp_path / run), {"val/log_l1": "Loss/L1_val"}, hparams_of(point, seed))
        events.write({"epoch": 1, "val/log_l1": 0.75})
        events.write({"epoch": 2, "val/log_l1": 0.5 if run == "b" else 0.25})
    experiment, groups = hparams_view(tmp_path)
    assert [p.name for p in experiment.hparam_infos] == [
        "caps/abs_max", "caps/alpha", "caps/clamp_enabled", "caps/clamp_value", "caps/log_delta_scale", "caps/mode",
        "model/adaptive_scaler", "model/learnable_scale", "model/output_norm", "model/scale_init",
        "model/scale_per_channel", "train/seed"]
    domains = {p.name: p for p in experiment.hparam_infos}
    assert list(domains["caps/mode"].domain_discrete) == ["A", "B"]
    assert (domains["caps/log_delta_scale"].domain_interval.min_value, domains["caps/log_delta_scale"].domain_interval.max_value) == (0.3, 1.5)
    assert [m.name.tag for m in experiment.metric_infos] == ["Loss/L1_val"]
    b, a = groups["b"], groups["a"]
    assert {name: value.WhichOneof("kind") for name, value in b.hparams.items()} == {
        "caps/mode": "string_value", "caps/log_delta_scale": "number_value", "model/output_norm": "bool_value",
        "train/seed": "number_value"}
    assert a.hparams["caps/abs_max"].number_value == 6.0 and a.hparams["train/seed"].number_value == 3
    assert [(m.name.tag, m.value, m.training_step) for m in b.metric_values] == [("Loss/L1_val", 0.5, 2)]
    assert [(m.value, m.training_step) for m in a.metric_values] == [(0.25, 2)]


def test_every_space_of_every_family_declares_an_hparams_experiment():
    # what write_tensorboard_experiment declares at a sweep's start, for each built-in space; a
    # choice among other values than numbers, strings and booleans is declared as text
    import optuna

    from losstune.search_spaces import space_distributions
    from losstune.trainables.registry import FAMILIES, load_family
    from losstune.trainables.engine.tensorboard import experiment_summary
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    for name in FAMILIES:
        family = load_family(name)
        for space in family.spaces:
            distributions, _ = space_distributions(family.space(space, family.space_config(space)), count=32)
            summary = experiment_summary(distributions, ["objective"])
            declared = HParamsPluginData.FromString(summary.value[0].metadata.plugin_data.content).experiment
            assert {p.name for p in declared.hparam_infos} == {*distributions, "train/seed"}, (name, space)
    odd = experiment_summary({"x": optuna.distributions.CategoricalDistribution([None, "a", 2])}, [])
    [info] = [p for p in HParamsPluginData.FromString(odd.value[0].metadata.plugin_data.content).experiment.hparam_infos
              if p.name == "x"]
    assert list(info.domain_discrete) == ["None", "a", "2"]


def test_each_run_says_how_it_ended_to_the_hparams_plugin(tmp_path):
    # every run was STATUS_UNKNOWN: trials ASHA stopped at epoch 1 looked finished. The driver's
    # SessionEnds writes SUCCESS for a full-length healthy run, FAILURE for an error or a health stop
    from types import SimpleNamespace

    import pyarrow.fs
    from tensorboard.plugins.hparams import api_pb2

    from losstune.trainables.engine.tensorboard import EpochEvents, SessionEnds, hparams_of
    from tests.tensorboard_view import hparams_view

    ends = SessionEnds(full_length=3)
    for run, last, failed in [("full", {"epoch": 3}, False), ("stopped", {"epoch": 1}, False),
                              ("unhealthy", {"epoch": 2, "stop_reason": "overflow"}, False), ("error", {}, True)]:
        EpochEvents(str(tmp_path / run), {}, hparams_of({"caps": {"mode": "A"}}, 0)).write({"epoch": 1, "val/x": 1.0})
        trial = SimpleNamespace(last_result=last, storage=SimpleNamespace(
            storage_filesystem=pyarrow.fs.LocalFileSystem(), trial_fs_path=str(tmp_path / run)))
        (ends.on_trial_error if failed else ends.on_trial_complete)(0, [], trial)
    # a trial that failed before its folder existed gets one, not an error in Tune's callback
    gone = SimpleNamespace(last_result={}, storage=SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem(),
                                                                   trial_fs_path=str(tmp_path / "none" / "trial")))
    ends.on_trial_error(0, [], gone)
    assert len(list((tmp_path / "none" / "trial").iterdir())) == 1
    _, groups = hparams_view(tmp_path)
    groups.pop("none/trial", None)  # no session start: not a run of the HParams view
    status = {name: api_pb2.Status.Name(group.sessions[0].status) for name, group in groups.items()}
    assert status == {"full": "STATUS_SUCCESS", "stopped": "STATUS_UNKNOWN", "unhealthy": "STATUS_FAILURE",
                      "error": "STATUS_FAILURE"}
