"""python benchmarks/memory.py [--families hdr_patch ...] [--quick]

Peak RSS of a trial's training worker per family at its default config: one TorchTrainer run of
one epoch (--quick: the family's smoke config), reading the worker's own `peak_mem_mb` report
(the worker process's VmHWM; CUDA's max allocated memory on a GPU).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine, platform_run, scratch, start_local_ray  # noqa: E402


def main() -> None:
    from trainables.config import merge
    from trainables.families import FAMILIES, family_module

    p = argparse.ArgumentParser()
    p.add_argument("--families", nargs="+", default=sorted(FAMILIES), choices=sorted(FAMILIES))
    p.add_argument("--quick", action="store_true", help="the families' smoke configs")
    args = p.parse_args()
    start_local_ray()
    folder = scratch("memory")
    print(f"peak RSS of one training worker, default config, 1 epoch ({machine()}):")
    for name in args.families:
        overrides = merge(family_module(name).SMOKE, {}) if args.quick else {}
        overrides = merge(overrides, {"train": {"epochs": 1}})
        reports = platform_run(name, overrides, folder, f"memory_{name}")
        print(f"  {name:<20} {reports[-1]['peak_mem_mb']:8.0f} MB")


if __name__ == "__main__":
    main()
