"""Records a cluster's nodes as they come and go: `python tests/cluster_watch.py DASHBOARD_URL OUT`
appends one JSON line a second, {"t": time, "alive": {node_id: {resources}}}, until killed. Its own
process (with the cluster's token in its environment), so that the test's process never joins
that cluster."""

import json
import sys
import time

from ray.util.state import list_nodes


def main(address: str, out: str) -> None:
    with open(out, "a") as f:
        while True:
            try:
                nodes = list_nodes(address=address, detail=True, raise_on_missing_output=False)
                alive = {n.node_id: n.resources_total for n in nodes if n.state == "ALIVE"}
                f.write(json.dumps({"t": time.time(), "alive": alive}) + "\n")
                f.flush()
            except Exception as err:  # the dashboard busy or not up yet: the next second tells
                f.write(json.dumps({"t": time.time(), "error": str(err)[:200]}) + "\n")
            time.sleep(1)


if __name__ == "__main__":
    main(*sys.argv[1:])
