"""python -m losstune.ray_jobs.core.autoscaling publish ~/ray_bootstrap_config.yaml   # on the head, after `ray start`

What a cluster can grow to: the autoscaler's node types, as Ray records them. Ray keeps a record of
the cluster's autoscaling config in its GCS (`ClusterConfig`: each node type's resources and its min
and max count), read by `ray._private.state.state.get_cluster_config()` and by Ray Train V2 and Ray
Data for their own sizing. Ray 2.60's own autoscaler (`ray up`, and
the fake multi-node provider, v1 and v2) leaves it empty: cluster.yaml's head therefore
publishes the autoscaler's own config (the bootstrap file `ray up` writes on the head, node types
and resources filled in) into that record once it has started. A sweep reads the record, never a
file: it plans for the cluster that can be, not only the nodes that are up now."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
import os

HEAD_TYPE_KEY = "head_node_type"


@dataclass(frozen=True)
class NodeType:
    name: str
    resources: dict  # {resource: amount} of one node of this type
    max_count: int  # -1: no limit


def node_types() -> list[NodeType] | None:
    """The node types of this cluster's autoscaling config, head included; None where Ray has no
    such record (a cluster without an autoscaler, or one whose config nobody published)."""
    # here, not at the top: loads ray only where this runs
    import ray._private.state

    config = ray._private.state.state.get_cluster_config()
    if config is None or not config.node_group_configs:
        return None
    return [NodeType(group.name, {k: float(v) for k, v in group.resources.items()}, int(group.max_count))
            for group in config.node_group_configs]


def cluster_config(autoscaling: dict):
    """Ray's ClusterConfig of an autoscaler config (`available_node_types`, `head_node_type`):
    whole resources only (the record holds integers; a fractional amount is rounded down)."""
    # here, not at the top: loads ray only where this runs
    from ray.core.generated import autoscaler_pb2

    head = autoscaling.get(HEAD_TYPE_KEY)
    config = autoscaler_pb2.ClusterConfig()
    for name, node_type in autoscaling["available_node_types"].items():
        group = config.node_group_configs.add(name=name)
        for kind, amount in (node_type.get("resources") or {}).items():
            group.resources[kind] = int(amount)
        group.min_count = 1 if name == head else int(node_type.get("min_workers", 0))
        group.max_count = 1 if name == head else int(node_type.get("max_workers", autoscaling.get("max_workers", 0)))
    return config


def publish(autoscaling: dict, gcs_address: str) -> None:
    """Write the record `get_cluster_config()` reads (the GCS's autoscaler-state KV entry, which its
    ReportClusterConfig RPC fills)."""
    # here, not at the top: loads ray only where this runs
    import ray._raylet
    from ray._raylet import GcsClient

    record = cluster_config(autoscaling).SerializeToString()  # a config without node types fails here, not in Ray
    GcsClient(address=gcs_address).internal_kv_put(ray._raylet.GCS_AUTOSCALER_CLUSTER_CONFIG_KEY.encode(), record,
                                                   True, ray._raylet.GCS_AUTOSCALER_STATE_NAMESPACE.encode())


def main(argv: list[str] | None = None) -> int:
    # here, not at the top: loads yaml only where this runs
    import yaml

    p = argparse.ArgumentParser(prog="python -m losstune.ray_jobs.core.autoscaling",
                                description="Publish the autoscaler's node types to Ray's record of the cluster config.")
    p.add_argument("action", choices=["publish"])
    p.add_argument("config", help="the autoscaler's config on the head (ray up writes ~/ray_bootstrap_config.yaml)")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS", "127.0.0.1:6379"), help="the GCS, host:port")
    args = p.parse_args(argv)
    try:
        with open(os.path.expanduser(args.config)) as f:
            autoscaling = yaml.safe_load(f)
        publish(autoscaling, args.address)
    except (OSError, yaml.YAMLError) as err:
        print(f"{p.prog}: error: {args.config}: {err}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        print(f"{p.prog}: error: {args.config}: not an autoscaler config with available_node_types ({err!r})",
              file=sys.stderr)
        return 2
    head = autoscaling.get(HEAD_TYPE_KEY)
    types = ", ".join(f"{name} x{1 if name == head else t.get('max_workers', 0)}"
                      for name, t in autoscaling["available_node_types"].items())
    print(f"published the autoscaler's node types to Ray at {args.address}: {types}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
