"""How a sweep fits itself to a cluster, against node lists and autoscaler node types given as data
(no Ray started; tests/ray_jobs/test_autoscaling_integration.py runs the same on Ray's autoscaler)."""

import dataclasses

import pytest
import ray

from losstune.ray_jobs.core import cluster
from losstune.ray_jobs.core.autoscaling import NodeType
from losstune.ray_jobs.core.usage import UsageError
from losstune.ray_jobs.core.plan import SweepPlan
from losstune.trainables.engine.driver import TrialResources


def fake_cluster(monkeypatch, *nodes):
    """A cluster of these live nodes and no autoscaler."""
    monkeypatch.setattr(cluster.ClusterShape, "read", classmethod(lambda cls: cls(list(nodes))))


def plan(storage_arg="/shared/results", scheduler="asha", trials=32, **resources) -> SweepPlan:
    """A plan of 32 trials; only what fitting it to a cluster reads is set."""
    return SweepPlan(family="hdr_patch", space="caps", preset="", base={}, objective={}, objectives=[],
                     default_point={}, epochs=10, trials=trials, search="optuna", scheduler=scheduler, seed=0,
                     grace_epochs=None, startup_trials=8, smoke_test=False, name="s", storage="/shared/results",
                     storage_arg=storage_arg, resources=TrialResources(**resources))


def test_drivers_go_to_the_head_when_the_cluster_offers_the_driver_resource(monkeypatch):
    fake_cluster(monkeypatch, {"CPU": 0.0, "losstune_driver": 64.0}, {"CPU": 8.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 1.0})
    fitted = cluster.fit_to_cluster(plan(cpus_per_worker=4, gpus_per_worker=1, worker_group=True))
    assert fitted.max_concurrent == 2  # two GPU nodes, one trial each
    assert fitted.resources.driver() == {"CPU": 0.0, "losstune_driver": 1.0}
    # a trial that trains in its own process is its worker: it holds the worker's CPU and GPU, on a GPU node
    fitted = cluster.fit_to_cluster(plan(cpus_per_worker=4, gpus_per_worker=1))
    assert fitted.max_concurrent == 2
    assert fitted.resources.driver() == fitted.resources.per_trial() == {"CPU": 4.0, "GPU": 1.0}


def test_a_pbt_population_larger_than_what_fits_takes_turns_by_the_trial_slot(monkeypatch):
    # 2 CPUs, a worker 0.9 + its driver 0.1: 2 trials at once. Each driver holds half the one unit
    # of losstune_trial_slots, so a third driver cannot start until one of the two is paused or ends
    fake_cluster(monkeypatch, {"CPU": 2.0, cluster.TRIAL_SLOTS: 1.0})
    fitted = cluster.fit_to_cluster(plan(scheduler="pbt", trials=16, cpus_per_worker=0.9, worker_group=True))
    assert fitted.max_concurrent == 2
    assert fitted.resources.driver() == {"CPU": 0.1, cluster.TRIAL_SLOTS: 0.5}
    # 3 at once: Ray counts custom resources in steps of 1e-4; 3 x 0.3333 fit in 1, a 4th does not
    fake_cluster(monkeypatch, {"CPU": 3.0, cluster.TRIAL_SLOTS: 1.0})
    assert cluster.fit_to_cluster(plan(scheduler="pb2", trials=16, cpus_per_worker=0.9, worker_group=True)).resources.slot_share == 0.3333
    # a population that fits, and every other scheduler: no turns, drivers as before
    assert cluster.fit_to_cluster(plan(scheduler="pbt", trials=3, cpus_per_worker=0.9, worker_group=True)).resources.driver() == {"CPU": 0.1}
    assert cluster.fit_to_cluster(plan(trials=16, cpus_per_worker=0.9, worker_group=True)).resources.driver() == {"CPU": 0.1}
    # a cluster without the resource: refused before any trial starts, with what to do
    fake_cluster(monkeypatch, {"CPU": 2.0})
    with pytest.raises(UsageError, match="--trials: a population of 16 is more than the 2 trials that run at once, "
                                         "and this Ray has no losstune_trial_slots resource"):
        cluster.fit_to_cluster(plan(scheduler="pbt", trials=16, cpus_per_worker=0.9, worker_group=True))
    # trials that train in their own process hold their worker's CPU: Tune starts only what fits, no turns needed
    fitted = cluster.fit_to_cluster(plan(scheduler="pbt", trials=16))
    assert fitted.max_concurrent == 2 and fitted.resources.driver() == {"CPU": 1.0}


def test_fractional_gpus_pack_trials(monkeypatch):
    fake_cluster(monkeypatch, {"CPU": 16.0, "GPU": 1.0})
    assert cluster.fit_to_cluster(plan(cpus_per_worker=2, gpus_per_worker=0.25)).max_concurrent == 4


def test_a_worker_bigger_than_every_node_is_refused_even_if_the_cluster_total_fits(monkeypatch):
    fake_cluster(monkeypatch, {"CPU": 4.0, "GPU": 1.0}, {"CPU": 4.0, "GPU": 1.0})
    with pytest.raises(UsageError, match=r"--gpus-per-worker: a training worker needs 2 GPU, the largest node has 1 "
                                         r"\(an autoscaler's node types count once the head publishes them"):
        cluster.fit_to_cluster(plan(cpus_per_worker=1, gpus_per_worker=2))


def test_relative_storage_on_several_nodes_is_refused(monkeypatch):
    fake_cluster(monkeypatch, {"CPU": 2.0}, {"CPU": 2.0})
    p = plan(storage_arg="./results", cpus_per_worker=1)
    with pytest.raises(UsageError, match="--storage: './results' is a relative local path on a 2-node cluster"):
        cluster.fit_to_cluster(p)
    fake_cluster(monkeypatch, {"CPU": 2.0})
    assert cluster.fit_to_cluster(p).max_concurrent == 2  # one node: a local folder is fine (two 1-CPU trials)


@pytest.mark.parametrize("user_value, expected", [(None, "0"), ("1", "1")])
def test_a_local_ray_turns_trains_preemption_watcher_off_unless_the_user_set_it(monkeypatch, user_value, expected):
    # one machine has no node to drain: the watcher would only be a process more per trial
    if user_value is None:
        monkeypatch.delenv(cluster.PREEMPTION_WATCHER_ENV, raising=False)
    else:
        monkeypatch.setenv(cluster.PREEMPTION_WATCHER_ENV, user_value)
    calls = []
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    cluster.start_local_ray()
    assert calls[0]["runtime_env"]["env_vars"] == {cluster.PREEMPTION_WATCHER_ENV: expected}


# cluster.yaml's shape: a head without CPUs for training that hosts the drivers, GPU nodes from 0
HEAD = {"CPU": 0.0, "losstune_driver": 64.0, "losstune_trial_slots": 1.0}
HEAD_TYPE = NodeType("head", HEAD, 1)
GPU_TYPE = NodeType("gpu_a10g", {"CPU": 8.0, "GPU": 1.0}, 3)


def test_a_gpu_sweep_starts_on_a_cluster_with_no_gpu_node_yet_and_plans_for_what_it_can_grow_to():
    shape = cluster.ClusterShape([HEAD], [HEAD_TYPE, GPU_TYPE])
    fitted = cluster.fit_to_cluster(plan(cpus_per_worker=4, gpus_per_worker=1), shape)
    # 3 GPU nodes at most, one trial each: 3 trials run at once once they are up, none before
    assert (fitted.max_concurrent, fitted.concurrent_now) == (3, 0)
    assert cluster.at_a_time(fitted) == "0 at a time now, up to 3 as the cluster grows"
    # one node up already: it counts among the 3
    shape = cluster.ClusterShape([HEAD, GPU_TYPE.resources], [HEAD_TYPE, GPU_TYPE])
    fitted = cluster.fit_to_cluster(plan(cpus_per_worker=4, gpus_per_worker=1), shape)
    assert (fitted.max_concurrent, fitted.concurrent_now) == (3, 1)
    # four quarter-GPU trials per node, bounded by the trials and by --max-concurrent
    assert cluster.fit_to_cluster(plan(cpus_per_worker=2, gpus_per_worker=0.25), shape).max_concurrent == 12
    assert cluster.fit_to_cluster(plan(trials=5, cpus_per_worker=2, gpus_per_worker=0.25), shape).max_concurrent == 5
    fitted = cluster.fit_to_cluster(dataclasses.replace(plan(cpus_per_worker=4, gpus_per_worker=1), max_concurrent=2), shape)
    assert (fitted.max_concurrent, cluster.at_a_time(fitted)) == (2, "1 at a time now, up to 2 as the cluster grows")


def test_a_worker_that_fits_no_node_type_is_refused_naming_the_largest_type():
    shape = cluster.ClusterShape([HEAD], [HEAD_TYPE, GPU_TYPE])
    with pytest.raises(UsageError, match="--gpus-per-worker: a training worker needs 2 GPU, the largest node type "
                                         "'gpu_a10g' has 1"):
        cluster.fit_to_cluster(plan(cpus_per_worker=1, gpus_per_worker=2), shape)
    with pytest.raises(UsageError, match="--cpus-per-worker: a training worker needs 16 CPU, the largest node type "
                                         "'gpu_a10g' has 8"):
        cluster.fit_to_cluster(plan(cpus_per_worker=16), shape)
    # a type the autoscaler may not add (max 0) is no place for a worker, even the largest
    shape = cluster.ClusterShape([HEAD], [HEAD_TYPE, GPU_TYPE, NodeType("gpu_h100", {"CPU": 16.0, "GPU": 1.0}, 0)])
    with pytest.raises(UsageError, match="--cpus-per-worker: a training worker needs 12 CPU, the largest node type "
                                         "'gpu_a10g' has 8"):
        cluster.fit_to_cluster(plan(cpus_per_worker=12), shape)
    shape = cluster.ClusterShape([HEAD], [HEAD_TYPE, NodeType("gpu_h100", {"CPU": 16.0, "GPU": 1.0}, 0)])
    with pytest.raises(UsageError, match="--cpus-per-worker: a training worker needs 1 CPU, the largest node type has 0"):
        cluster.fit_to_cluster(plan(cpus_per_worker=1, gpus_per_worker=1), shape)


def test_a_cluster_that_can_grow_refuses_a_relative_storage_before_its_nodes_come():
    shape = cluster.ClusterShape([HEAD], [HEAD_TYPE, GPU_TYPE])
    with pytest.raises(UsageError, match="--storage: './results' is a relative local path on a cluster whose "
                                         "autoscaler adds nodes"):
        cluster.fit_to_cluster(plan(storage_arg="./results", cpus_per_worker=1, gpus_per_worker=1), shape)
