"""The Ray workarounds that need no Ray running (the others: test_ray_workarounds_*.py)."""

import pytest


def test_the_restart_guard_asks_about_the_driver_only_before_a_restart(monkeypatch):
    import losstune.trainables.engine.ray_workarounds as workarounds

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


def test_a_trainer_without_datasets_starts_no_dataset_manager_and_one_with_them_keeps_it():
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

    from losstune.trainables.engine.ray_workarounds import without_an_idle_dataset_manager

    def kinds(trainer):
        return {type(callback) for callback in trainer._create_default_callbacks()}

    def trainer(**datasets):
        return TorchTrainer(lambda: None, scaling_config=ray.train.ScalingConfig(num_workers=1),
                            datasets=datasets or None)

    plain = trainer()
    assert DatasetsCallback in kinds(plain)  # Ray's own default, which the workaround is for
    patched = without_an_idle_dataset_manager(trainer())
    assert DatasetsCallback not in kinds(patched)
    assert kinds(patched) == kinds(plain) - {DatasetsCallback} and PlacementGroupCleanerCallback in kinds(patched)
    with_data = without_an_idle_dataset_manager(trainer(train=lambda: None))
    assert DatasetsCallback in kinds(with_data)


def test_tunes_experiment_sync_leaves_out_its_temporary_state_files(tmp_path):
    # the race behind make demo's "ERROR ... Saving experiment state to storage ... failed": a
    # temporary state file listed by the upload, then renamed away by the next snapshot. With the
    # workaround the upload never lists them.
    import pyarrow.fs
    from ray.train._internal.storage import _FilesystemSyncer, _upload_to_fs_path

    from losstune.trainables.engine.ray_workarounds import no_temporary_files_in_experiment_sync

    no_temporary_files_in_experiment_sync()
    no_temporary_files_in_experiment_sync()  # twice: patched once
    staging, storage = tmp_path / "staging", tmp_path / "storage"
    staging.mkdir()
    (staging / "experiment_state-2026.json").write_text("{}")
    (staging / ".3f2a-tmp-basic-variant-state-2026.json").write_text("{}")
    (staging / ".9b1c-tmp-search_gen_state.pkl").write_text("")
    function, kwargs = _FilesystemSyncer(pyarrow.fs.LocalFileSystem())._sync_up_command(str(staging), str(storage))
    assert kwargs["exclude"] == [".*-tmp-*"]
    function(**kwargs)
    assert sorted(p.name for p in storage.iterdir()) == ["experiment_state-2026.json"]
    assert function is _upload_to_fs_path
