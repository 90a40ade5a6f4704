"""trial_overhead.py's count of the CPU each kind of Ray worker process takes."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

from process_cpu import RayProcessCPU, cpu_by_kind  # noqa: E402


def test_cpu_by_kind_sums_each_name_and_puts_the_costliest_first():
    # two workers 250 + 150 = 400 ticks = 4 s at 100 ticks/s; one controller 300 ticks = 3 s
    records = [[250, "ray::RayTrainWorker"], [300, "ray::TrainController"], [150, "ray::RayTrainWorker"]]
    assert cpu_by_kind(records, 100) == {"ray::RayTrainWorker": (2, 4.0), "ray::TrainController": (1, 3.0)}


def test_the_sampler_sees_a_process_named_as_ray_names_its_workers_and_keeps_its_actor_name():
    # a process whose argv[0] is "ray::Busy.step" (Ray's title while an actor runs a method) that
    # burns CPU for a moment, then calls itself "ray::IDLE": it is counted once, as ray::Busy
    script = ("import os, time\n"
              "t = time.process_time()\n"
              "while time.process_time() - t < 0.4: pass\n"
              f"os.execv({sys.executable!r}, ['ray::IDLE', '-c', 'import time; time.sleep(0.5)'])\n")
    with RayProcessCPU(every_s=0.05) as sampler:
        busy = subprocess.Popen(["ray::Busy.step", "-c", script], executable=sys.executable)
        assert busy.wait() == 0
    # only that process's records: a Ray this test session started earlier is this process's
    # descendant too, and its workers are sampled beside it
    kinds = cpu_by_kind([record for key, record in sampler.seen.items() if key.startswith(f"{busy.pid}:")],
                        os.sysconf("SC_CLK_TCK"))
    assert set(kinds) == {"ray::Busy"}, kinds
    processes, seconds = kinds["ray::Busy"]
    assert processes == 1 and 0.3 <= seconds < 3.0  # the 0.4 s it burnt, less what the last poll missed
