"""A trial's Train controller restarts a crashed worker only while the trial's driver lives: a
restart after the driver has gone would reserve CPUs that nothing ever frees.

The other half, a restart with the driver alive, runs end to end through a sweep in
tests/ray_jobs/test_multinode_integration.py (a killed Train worker resumes, restarts == 1)."""

import time

import pytest

from losstune.trainables.config import merge
from losstune.trainables.engine.driver import CONTROLLER_FAILURE_LIMIT
from losstune.trainables.engine.ray_workarounds import NoRestartWithoutDriver, driver_alive
from losstune.trainables.registry import load_family
from losstune.trainables.engine.ray_session import train_loop

pytestmark = pytest.mark.integration


def killed_stand_in_driver(local_ray) -> str:
    """The id of an actor that played a trial's driver: alive by the GCS, then killed."""
    @local_ray.remote(num_cpus=0)
    class Driver:
        def ready(self):
            return True

    actor = Driver.remote()
    local_ray.get(actor.ready.remote())
    actor_id = actor._actor_id.hex()
    assert driver_alive(actor_id)
    local_ray.kill(actor)
    deadline = time.time() + 30
    while driver_alive(actor_id) and time.time() < deadline:
        time.sleep(0.2)
    assert not driver_alive(actor_id)
    return actor_id


def created_placement_groups(ray) -> set:
    return {pg_id for pg_id, pg in ray.util.placement_group_table().items() if pg["state"] == "CREATED"}


def fit_with_a_crash(tmp_path, driver_id):
    """hdr_patch smoke, 2 epochs, the worker crashing in epoch 2 once; one worker restart allowed."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from losstune.trainables.engine.ray_workarounds import without_an_idle_dataset_manager

    module = load_family("hdr_patch")
    config = merge(module.smoke, {"train": {"epochs": 2, "checkpoint_every": 1},
                                  "health": {"max_overflow_frac": 1.0}})
    trainer = without_an_idle_dataset_manager(TorchTrainer(
        train_loop(module), train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
        run_config=ray.train.RunConfig(
            name="run", storage_path=str(tmp_path), callbacks=[NoRestartWithoutDriver(driver_id)],
            failure_config=ray.train.FailureConfig(max_failures=1,
                                                   controller_failure_limit=CONTROLLER_FAILURE_LIMIT))))
    return trainer.fit()


def test_a_gone_driver_ends_the_run_without_reserving_a_new_worker(local_ray, tmp_path, inject_faults):
    inject_faults(crash_at_epoch=2)
    driver_id = killed_stand_in_driver(local_ray)
    before = created_placement_groups(local_ray)
    with pytest.raises(Exception, match="not restarting its worker group"):
        fit_with_a_crash(tmp_path, driver_id)
    # Train removes the crashed group's placement group; no new one was made
    deadline = time.time() + 10
    while created_placement_groups(local_ray) - before and time.time() < deadline:
        time.sleep(0.2)
    assert created_placement_groups(local_ray) - before == set()
