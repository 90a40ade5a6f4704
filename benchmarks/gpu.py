"""python benchmarks/gpu.py [--families hdr_patch ...] [--epochs 5] [--quick] [--set FAMILY:KEY=VALUE ...]

Only on a machine with a CUDA GPU (never part of CI). Per family at its default config (with
--set's changes, e.g. `--set medgen_compression:loss.perceptual_weights_path=/weights/resnet50.pt`:
its default perceptual term needs a local ResNet-50 the project cannot download):
  * step time with bf16 mixed precision vs fp32, one TorchTrainer worker on 1 GPU;
  * total samples/s of four trials sharing the GPU at 0.25 each (run side by side) vs one trial
    holding the whole GPU.
Step time is batch / samples_per_s, median of the epochs after the first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine, platform_run, scratch, start_local_ray  # noqa: E402
from losstune.ray_jobs.core.usage import UsageError
from losstune.trainables.config import ConfigError, merge
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import FAMILIES, load_family


def steady(reports: list[dict], key: str = "samples_per_s") -> float:
    return statistics.median(r[key] for r in reports[1:])


def main() -> None:
    # here, not at the top: loads torch only where this runs
    import torch

    p = argparse.ArgumentParser()
    p.add_argument("--families", nargs="+", default=sorted(FAMILIES), choices=sorted(FAMILIES))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="3 epochs")
    p.add_argument("--set", action="append", default=[], metavar="FAMILY:KEY=VALUE",
                   help="a config change for one family, as the sweep's --set KEY=VALUE")
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py: no CUDA GPU on this machine; run it on a GPU node")
    epochs = 3 if args.quick else args.epochs
    changes = checked_changes(args.families, args.set)
    start_local_ray()
    folder = scratch("gpu")
    print(f"({machine()}), {epochs} epochs per run, median of epochs 2..{epochs}")
    for name in args.families:
        batch = make_config(load_family(name), changes[name]).train.batch_size
        runs = {}
        for precision in ("no", "bf16"):
            overrides = merge(changes[name], {"train": {"epochs": epochs, "mixed_precision": precision}})
            runs[precision] = steady(platform_run(name, overrides, folder, f"{name}_{precision}", gpus=1.0))
        fp32_ms, bf16_ms = 1e3 * batch / runs["no"], 1e3 * batch / runs["bf16"]
        print(f"{name}: step fp32 {fp32_ms:.1f} ms, bf16 {bf16_ms:.1f} ms, bf16/fp32 {bf16_ms / fp32_ms:.2f}")
        overrides = merge(changes[name], {"train": {"epochs": epochs}})
        with ThreadPoolExecutor(4) as pool:
            quarter = list(pool.map(lambda i: platform_run(name, overrides, folder, f"{name}_quarter{i}", gpus=0.25),
                                    range(4)))
        shared = sum(steady(r) for r in quarter)
        print(f"{name}: samples/s four trials at 0.25 GPU {shared:.0f} vs one trial at 1 GPU {runs['no']:.0f} "
              f"(x{shared / runs['no']:.2f})")


def checked_changes(families: list[str], items: list[str]) -> dict:
    """{family: its --set changes}, each family's config built and its data checked before Ray
    starts: a config that cannot train here (medgen_compression's perceptual term without its
    weights) exits with one line naming the family and field, not a worker's traceback later."""
    # here, not at the top: loads cloudpickle only where this runs
    from losstune.data import DataError
    from losstune.ray_jobs.cli.flags import parse_set

    given = {name: [] for name in families}
    for item in items:
        name, sep, change = item.partition(":")
        if not sep or name not in given:
            sys.exit(f"benchmarks/gpu.py: --set {item!r}: expected FAMILY:KEY=VALUE, FAMILY one of {', '.join(families)}")
        given[name].append(change)
    changes = {}
    for name, family_items in given.items():
        family = load_family(name)
        try:
            changes[name] = parse_set(family_items)
            family.check_data(make_config(family, changes[name]))
        except (ConfigError, DataError, UsageError) as err:
            sys.exit(f"benchmarks/gpu.py: {name}: {err}")
    return changes


if __name__ == "__main__":
    main()
