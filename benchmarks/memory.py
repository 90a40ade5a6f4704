"""python benchmarks/memory.py [--families hdr_patch ...] [--quick]

Peak RSS of a trial's training worker per family at its default config: one TorchTrainer run of
one epoch (--quick: the family's smoke config), reading the worker's own `peak_mem_mb` report
(the worker process's VmHWM; CUDA's max allocated memory on a GPU). Where one default epoch takes
too long on a CPU (SHORT_DATA), the default model, batch and image size train on a training set
of one or two batches; the line says so.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine, platform_run, scratch, start_local_ray  # noqa: E402
from losstune.trainables.config import merge
from losstune.trainables.registry import FAMILIES, load_family

# Default epochs a CPU takes too long over: medgen_diffusion's seed-sized UNet at 128x128, batch 16,
# ~26 steps (8 training phantoms of ~52 non-empty slices) and ~70 validation passes (2 phantoms, 10
# timesteps a batch). Cut here to 1 phantom each, ~32 slices: 2 steps. At the default size the
# phantoms alone (10 of 128x128x64 voxels, image and seg in float32) are 80 MB more, before their
# slices are cached: the figure is the model's and step's, not the data's.
SHORT_DATA = {
    "medgen_diffusion": {"data": {"subjects": 2, "phantom_shape": [128, 128, 40]}},
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--families", nargs="+", default=sorted(FAMILIES), choices=sorted(FAMILIES))
    p.add_argument("--quick", action="store_true", help="the families' smoke configs")
    args = p.parse_args()
    start_local_ray()
    folder = scratch("memory")
    print(f"peak RSS of one training worker, default config, 1 epoch ({machine()}):")
    for name in args.families:
        cut = {} if args.quick else SHORT_DATA.get(name, {})
        overrides = merge(load_family(name).smoke if args.quick else cut, {"train": {"epochs": 1}})
        last = platform_run(name, overrides, folder, f"memory_{name}")[-1]
        note = f"  (data cut: {cut['data']})" if cut else ""
        print(f"  {name:<20} {last['peak_mem_mb']:8.0f} MB   (epoch {last['time/epoch_s']:.0f} s){note}", flush=True)


if __name__ == "__main__":
    main()
