"""The autoscaler's node types as the head publishes them to Ray, read back as Ray reads them (no
Ray started: the record itself; tests/ray_jobs/test_autoscaling_integration.py publishes it on a
running head with cluster.yaml's command)."""

import ray._private.state

from losstune.ray_jobs.core import autoscaling
from losstune.ray_jobs.core.autoscaling import cluster_config

HEAD = {"CPU": 0, "losstune_driver": 64, "losstune_trial_slots": 1}


def test_the_published_record_is_what_rays_own_sizing_reads():
    # cluster.yaml's node types as the autoscaler's config holds them, in Ray's ClusterConfig record:
    # Ray's own sum over it (what Train V2 reads) is the cluster at its largest
    config = cluster_config({"head_node_type": "head", "max_workers": 8, "available_node_types": {
        "head": {"resources": HEAD, "min_workers": 0, "max_workers": 0},
        "gpu_a10g": {"resources": {"CPU": 8, "GPU": 1}, "min_workers": 0, "max_workers": 3}}})
    by_name = {g.name: g for g in config.node_group_configs}
    assert (by_name["head"].max_count, by_name["gpu_a10g"].max_count, by_name["gpu_a10g"].min_count) == (1, 3, 0)
    calculate = ray._private.state.GlobalState._calculate_max_resource_from_cluster_config
    assert (calculate(config, "GPU"), calculate(config, "CPU"), calculate(config, "losstune_driver")) == (3, 24, 64)


def test_a_config_that_cannot_be_read_is_one_line_and_exit_2(tmp_path, capsys):
    assert autoscaling.main(["publish", str(tmp_path / "missing.yaml"), "--address", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.yaml" in err and "No such file" in err
    (tmp_path / "no_types.yaml").write_text("cluster_name: x\n")
    assert autoscaling.main(["publish", str(tmp_path / "no_types.yaml"), "--address", "127.0.0.1:1"]) == 2
    assert "no_types.yaml" in capsys.readouterr().err
