"""gpu_profile.py's reading of a profile: how long the GPU was busy, and what it ran."""

import os
import sys
from types import SimpleNamespace

from torch.autograd import DeviceType

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

from gpu_profile import gpu_activity  # noqa: E402


def event(name, start, end, device=DeviceType.CUDA, annotation=False):
    span = SimpleNamespace(start=start, end=end, elapsed_us=lambda: end - start)
    return SimpleNamespace(name=name, device_type=device, is_user_annotation=annotation, time_range=span)


def test_busy_time_counts_overlapping_work_once_and_leaves_out_annotations_and_the_cpu():
    events = [event("gemm", 0, 10), event("add", 5, 15), event("gemm", 12, 14),  # two streams overlap
              event("Memcpy HtoD (Pageable -> Device)", 20, 25),
              event("Optimizer.step#AdamW.step", 0, 60, annotation=True),  # spans kernels and gaps
              event("aten::mm", 0, 100, device=DeviceType.CPU)]
    busy, kernels, totals = gpu_activity(events)
    # union of [0, 10], [5, 15], [12, 14] is [0, 15] (15 us), plus the copy [20, 25] (5 us): 20 us;
    # the copy is GPU work but no kernel launch: 3 kernels; gemm 10 + 2 = 12 us, add 10 us
    assert busy == 20.0
    assert kernels == 3
    assert totals == {"gemm": 12.0, "add": 10.0}


def test_a_profile_without_gpu_events_is_idle():
    assert gpu_activity([event("aten::mm", 0, 100, device=DeviceType.CPU)]) == (0.0, 0, {})
