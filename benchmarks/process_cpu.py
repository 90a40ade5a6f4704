"""What the processes of a benchmark cost in CPU, from /proc: the machine's busy seconds, and each
Ray worker process's (by its actor's class) while a `with RayProcessCPU()` lasts
(benchmarks/trial_overhead.py)."""

from __future__ import annotations

import os
import threading
from collections import defaultdict


def machine_cpu_seconds() -> float:
    """CPU seconds this machine's cores have been busy since boot (/proc/stat, every process):
    what the trials' processes cost in all, which their wall time on a shared machine hides."""
    with open("/proc/stat") as stat:
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class RayProcessCPU:
    """CPU seconds of each Ray worker process (`ray::` + its actor's class) that lived during the
    `with`, polled from /proc every `every_s`: which of a trial's processes cost what. Only this
    process's descendants count (the local Ray it started), not another Ray on the machine. A
    process that exits between two polls loses its last `every_s` of CPU: lower bounds."""

    def __init__(self, every_s: float = 0.1):
        self.every_s = every_s
        self.seen: dict[str, list] = {}  # "pid:start time" -> [CPU ticks, name]
        self._ours = {os.getpid()}  # this process and its descendants seen so far
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(self.every_s):
            for pid in filter(str.isdigit, os.listdir("/proc")):
                self._look_at(int(pid))

    def _look_at(self, pid: int) -> None:
        if (stat := read_stat(pid)) is None:
            return  # gone meanwhile
        parent, started, ticks = stat
        if parent in self._ours:
            self._ours.add(pid)
        if pid not in self._ours:
            return  # not our Ray's: its name is not even read
        name = read_argv0(pid)
        if not name.startswith("ray::"):
            return  # raylet, GCS, dashboard: Ray's daemons, not a trial's processes
        # "ray::IDLE" until the worker holds an actor, then "ray::Class" or "ray::Class.method"
        name = name.split()[0].split(".")[0]
        key = f"{pid}:{started}"  # pids are reused
        if name == "ray::IDLE" and key in self.seen:
            name = self.seen[key][1]
        self.seen[key] = [ticks, name]

    def by_kind(self) -> dict[str, tuple[int, float]]:
        return cpu_by_kind(self.seen.values(), os.sysconf("SC_CLK_TCK"))


def read_stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, start time, CPU ticks so far) from /proc/PID/stat, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the fields after the command's name
    except OSError:
        return None
    # stat fields 4 (ppid), 22 (starttime), 14 + 15 (utime + stime)
    return int(fields[1]), fields[19], int(fields[11]) + int(fields[12])


def read_argv0(pid: int) -> str:
    """The process's argv[0], where Ray writes a worker's title; "" once it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read().split("\0", 1)[0]
    except OSError:
        return ""


def cpu_by_kind(records, ticks_per_s: float) -> dict[str, tuple[int, float]]:
    """{process name: (processes, CPU seconds)} from [CPU ticks, name] records, costliest first."""
    kinds: dict[str, list] = defaultdict(lambda: [0, 0])
    for ticks, name in records:
        kinds[name][0] += 1
        kinds[name][1] += ticks
    return {name: (n, ticks / ticks_per_s) for name, (n, ticks) in sorted(kinds.items(), key=lambda kv: -kv[1][1])}
