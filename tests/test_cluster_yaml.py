"""cluster.yaml passes Ray's own autoscaler validator and the platform's security rules (no cloud)."""

import re
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import validate_config

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
