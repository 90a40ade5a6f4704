"""Ray nodes started as a user starts them (`ray start`), on ports and a temp dir of their own, and
stopped by that temp dir alone: `ray stop` would stop every Ray of this user on the machine."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

RAY_CLI = str(Path(sys.executable).parent / "ray")


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# the ports cluster.yaml pins (its security comment lists them), by the name a test gives its free one
PINNED = {"object-manager-port": "objects", "node-manager-port": "raylet", "dashboard-agent-grpc-port": "agent_grpc",
          "dashboard-agent-listen-port": "agent", "runtime-env-agent-port": "runtime_env",
          "metrics-export-port": "metrics"}
NAMES = ("gcs", *PINNED.values(), "dashboard", "client")
PUBLISH = re.compile(r"\s*&&\s*python -m losstune\.ray_jobs\.core\.autoscaling publish \S+ --address \S+")


def node_command(commands: list[str], ports: dict, autoscaling_config: str | None = None, extra_flags: str = "") -> str:
    """cluster.yaml's start commands as a fresh node runs them, less `ray stop` (which would stop
    every Ray of this user on the machine), on ports of their own so that another Ray here
    cannot collide with them, `extra_flags` added to `ray start`. The autoscaler's config (which
    `ray up` writes on the head, and the head publishes to Ray) is `autoscaling_config`; without
    one, neither the autoscaler nor the publishing step runs."""
    cmd = "; ".join(c for c in commands if c.strip() != "ray stop")
    cmd = cmd.replace("--port=6379", f"--port={ports['gcs']}")
    cmd = cmd.replace("$RAY_HEAD_IP:6379", f"127.0.0.1:{ports['gcs']}").replace("127.0.0.1:6379", f"127.0.0.1:{ports['gcs']}")
    for flag, name in PINNED.items():
        cmd = re.sub(rf"--{flag}=\d+", f"--{flag}={ports[name]}", cmd)
    if autoscaling_config:
        cmd = cmd.replace("~/ray_bootstrap_config.yaml", autoscaling_config)
    else:
        cmd = PUBLISH.sub("", re.sub(r"--autoscaling-config=\S+", "", cmd))
    python = str(Path(sys.executable))  # the publishing step, in this venv
    return cmd.replace("ray start ", f"ray start {extra_flags} ").replace("&& python -m", f"&& {python} -m")


def run_shell(cmd: str, home=None, timeout: int = 120, **env) -> subprocess.CompletedProcess:
    """`cmd` in bash with this venv's `ray` first on PATH; RAY_AUTH_MODE and RAY_ADDRESS unset
    (as on a fresh node) unless given in `env`."""
    full = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    full.pop("RAY_AUTH_MODE", None)
    full.pop("RAY_ADDRESS", None)
    if home is not None:
        full["HOME"] = str(home)
    full.update({k: str(v) for k, v in env.items()})
    return subprocess.run(["bash", "-c", cmd], env=full, capture_output=True, text=True, timeout=timeout)


def stop_nodes(temp_dir: str) -> None:
    """Stops the Ray processes whose command line names `temp_dir`, and their children."""
    import psutil

    mine = {p.pid for p in [psutil.Process(), *psutil.Process().parents()]}  # a caller may name it too
    roots = [p for p in psutil.process_iter(["cmdline"])
             if p.pid not in mine and any(temp_dir in a for a in p.info["cmdline"] or [])]
    procs = set(roots)
    for p in roots:
        try:
            procs.update(p.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(procs), timeout=5)
    for p in alive:
        p.kill()
