"""cluster.yaml passes Ray's own autoscaler validator and the platform's security rules (no cloud)."""

import re
import urllib.request
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import validate_config

from losstune.ray_jobs.core.cluster import TRIAL_SLOTS

from tests.ray_nodes import NAMES, PINNED, RAY_CLI, free_ports, node_command, run_shell, stop_nodes

CLUSTER = Path(__file__).resolve().parents[1] / "cluster.yaml"


@pytest.fixture(scope="module")
def cluster():
    return yaml.safe_load(CLUSTER.read_text())


def test_passes_rays_autoscaler_schema(cluster):
    validate_config(cluster)  # raises jsonschema.ValidationError / ValueError when invalid


def test_head_is_on_demand_cpu_and_hosts_the_drivers(cluster):
    head = cluster["available_node_types"][cluster["head_node_type"]]
    assert "InstanceMarketOptions" not in head["node_config"]
    assert head["resources"]["CPU"] == 0 and head["resources"]["losstune_driver"] >= 1
    assert head["resources"][TRIAL_SLOTS] == 1  # the unit a PBT population's drivers share


def test_gpu_workers_autoscale_from_zero_on_spot(cluster):
    workers = {k: v for k, v in cluster["available_node_types"].items() if k != cluster["head_node_type"]}
    assert workers and cluster["idle_timeout_minutes"] > 0
    for node in workers.values():
        assert node["min_workers"] == 0
        assert node["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
        assert "IamInstanceProfile" in node["node_config"]


def test_same_ray_and_python_as_setup_cfg(cluster):
    setup = (CLUSTER.parent / "setup.cfg").read_text()
    ray_version = re.search(r"ray\[[^\]]*\]==([\d.]+)", setup).group(1)
    assert f"rayproject/ray:{ray_version}-py311" in cluster["docker"]["image"]


def test_dashboard_and_client_are_never_public(cluster):
    starts = " ".join(cluster["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in starts and "0.0.0.0" not in starts
    for rule in cluster["provider"]["security_group"]["IpPermissions"]:
        public = any(r["CidrIp"] == "0.0.0.0/0" for r in rule.get("IpRanges", []))
        public |= any(r.get("CidrIpv6") == "::/0" for r in rule.get("Ipv6Ranges", []))
        assert not public, f"ingress {rule['FromPort']}-{rule['ToPort']} open to the internet"
        for port in (8265, 10001, 6379):
            assert not rule["FromPort"] <= port <= rule["ToPort"], f"port {port} opened in the security group"


def test_no_credentials_in_the_file():
    text = CLUSTER.read_text()
    for pattern in (r"AKIA[0-9A-Z]{16}", r"(?i)aws_secret_access_key", r"(?i)aws_access_key_id",
                    r"(?i)ssh_private_key", r"(?i)RAY_AUTH_TOKEN="):
        assert not re.search(pattern, text.replace("RAY_AUTH_TOKEN=$(", "")), pattern


# ---- the token, for real: a head and a worker started with cluster.yaml's own commands ----

def head_command(cluster, ports: dict, temp_dir: str) -> str:
    return node_command(cluster["head_start_ray_commands"], ports, extra_flags=(
        f"--num-cpus=1 --dashboard-port={ports['dashboard']} --ray-client-server-port={ports['client']} "
        f"--temp-dir={temp_dir}"))


def post_job(port: int, token: str | None) -> int:
    """POST /api/jobs/ as an attacker (no token) or the user (the token) would; the HTTP status."""
    import json
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/jobs/", method="POST", headers=headers,
                                     data=json.dumps({"entrypoint": "id"}).encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP port listens on, from the kernel's socket table."""
    import psutil

    return {c.laddr.ip for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def alive_nodes(gcs_port: int, home, timeout_s: float = 60) -> int:
    """How many nodes `ray status` lists as active, once the autoscaler's view (refreshed every
    few seconds) has two, or at the timeout."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        status = run_shell(f"RAY_AUTH_MODE=token {RAY_CLI} status --address 127.0.0.1:{gcs_port}", home)
        active = status.stdout.split("Active:")[-1].split("Pending:")[0].count("node_")
        if active >= 2 or time.monotonic() > deadline:
            return active
        time.sleep(2)


@pytest.mark.integration
def test_a_fresh_head_refuses_jobs_without_the_token_and_its_workers_join_with_it(cluster, tmp_path):
    laptop, head_home, worker_home = tmp_path / "laptop", tmp_path / "head", tmp_path / "worker"
    assert run_shell(f"{RAY_CLI} get-auth-token --generate; chmod 600 ~/.ray/auth_token", laptop).returncode == 0
    token = (laptop / ".ray" / "auth_token").read_text().strip()
    assert (laptop / ".ray" / "auth_token").stat().st_mode & 0o777 == 0o600  # as cluster.yaml says to make it
    # what `ray up` uploads: the file mount of the laptop's token, and nothing else in HOME
    mounted = cluster["file_mounts"]["/home/ray/.ray/auth_token"]
    assert mounted == "~/.ray/auth_token"
    for home in (head_home, worker_home):
        (home / ".ray").mkdir(parents=True)
        (home / ".ray" / "auth_token").write_text((laptop / ".ray" / "auth_token").read_text())
    ports = dict(zip(NAMES, free_ports(len(NAMES))))
    temp_dir = f"/tmp/losstune_token_{ports['gcs']}"  # short: Ray's socket paths must fit 107 bytes
    try:
        started = run_shell(head_command(cluster, ports, temp_dir), head_home)
        assert started.returncode == 0, started.stderr[-2000:]
        assert "Token authentication is disabled" not in started.stdout + started.stderr
        assert post_job(ports["dashboard"], None) == 401
        assert post_job(ports["dashboard"], "not-the-token") in (401, 403)
        assert post_job(ports["dashboard"], token) == 200
        # where each port listens is what cluster.yaml's security comment says: the dashboard on
        # loopback alone, the others on every interface (the security group keeps them in the
        # cluster), and /metrics answers with no token
        assert listening_addresses(ports["dashboard"]) == {"127.0.0.1"}
        for name in ("gcs", "objects", "raylet", "metrics"):
            assert listening_addresses(ports[name]) & {"0.0.0.0", "::"}, name
        assert listening_addresses(ports["client"]) - {"127.0.0.1", "::ffff:127.0.0.1"}  # the node's own address
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=30) as response:
            assert response.status == 200
        comment = CLUSTER.read_text().split("# Security:")[1].split("\n\n")[0]
        security = " ".join(line.lstrip("# ") for line in comment.splitlines())
        assert "(8265) listens on the head's loopback only" in security
        assert "Ray's other ports listen on ALL interfaces" in security
        for flag in PINNED:
            assert f"--{flag}=" in " ".join(cluster["head_start_ray_commands"] + cluster["worker_start_ray_commands"])
        worker_ports = dict(ports, **dict(zip(PINNED.values(), free_ports(len(PINNED)))))
        joined = run_shell(node_command(cluster["worker_start_ray_commands"], worker_ports, extra_flags="--num-cpus=1"),
                           worker_home)
        assert joined.returncode == 0, joined.stderr[-2000:]
        assert alive_nodes(ports["gcs"], worker_home) == 2
    finally:
        stop_nodes(temp_dir)


@pytest.mark.integration
def test_a_node_without_the_token_does_not_start(cluster, tmp_path):
    ports = dict(zip(NAMES, free_ports(len(NAMES))))
    temp_dir = f"/tmp/losstune_token_{ports['gcs']}"
    try:
        started = run_shell(head_command(cluster, ports, temp_dir), tmp_path)  # HOME with no ~/.ray
        assert started.returncode != 0
        assert "no authentication token was found" in started.stderr
    finally:
        stop_nodes(temp_dir)
