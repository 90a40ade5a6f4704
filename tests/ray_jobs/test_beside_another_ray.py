"""The CLIs start and address a Ray of their own while someone else's `ray start` cluster runs on
the machine, where a plain ray.init() would join it."""

import sys

import pytest

from tests.ray_nodes import RAY_CLI, free_ports, run_shell, stop_nodes

pytestmark = pytest.mark.integration


@pytest.fixture()
def another_ray(tmp_path):
    """An unrelated head as another user starts it; RAY_TMPDIR points ray.init()'s lookup at it."""
    gcs, client, agent = free_ports(3)
    tmp = f"/tmp/losstune_other_{gcs}"  # Ray looks for ray_current_cluster in $RAY_TMPDIR/ray
    started = run_shell(f"{RAY_CLI} start --head --port={gcs} --num-cpus=1 --include-dashboard=false "
                        f"--ray-client-server-port={client} --dashboard-agent-listen-port={agent} "
                        f"--temp-dir={tmp}/ray", RAY_TMPDIR=tmp)
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        yield tmp
    finally:
        stop_nodes(tmp)


def test_a_sweep_runs_on_its_own_ray_beside_another(another_ray, tmp_path):
    done = run_shell(f"{sys.executable} -m losstune.ray_jobs.sweep hdr_patch --confirm-top 0 --smoke-test --trials 1 --epochs 1 "
                     f"--scheduler none --storage {tmp_path} --name beside", timeout=300, RAY_TMPDIR=another_ray)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Started a local Ray instance" in done.stderr + done.stdout
