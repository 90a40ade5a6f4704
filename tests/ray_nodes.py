"""Ray nodes started as a user starts them (`ray start`), on ports and a temp dir of their own, and
stopped by that temp dir alone: `ray stop` would stop every Ray of this user on the machine."""

import os
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

    roots = [p for p in psutil.process_iter(["cmdline"]) if any(temp_dir in a for a in p.info["cmdline"] or [])]
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
    _, alive = psutil.wait_procs(list(procs), timeout=15)
    for p in alive:
        p.kill()
