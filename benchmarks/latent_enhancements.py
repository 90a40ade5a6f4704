"""python benchmarks/latent_enhancements.py [--image-size 256] [--batch 32] [--repeats 3] [--quick]

What each of seed 000's loss enhancements costs per training step of the latent conditioner,
relative to the current loss (10 * MSE(main) + MSE(hier)), measured side by side in one process:
the same batch and model, each variant's steps interleaved with the others' so that machine noise
hits them alike. A step is augmentation + forward + the family's loss + backward + AdamW (and the
adaptive weighter's Adam). Also the default model's parameter count and the process's peak RSS.
The seed's table claims +5% (multi-scale) to +25% (consistency).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from losstune.trainables.family_api import make_config

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS = {
    "baseline (current loss)": {},
    "multi-scale robust": {"enhancements": {"robust": True}},
    "perceptual": {"enhancements": {"perceptual": True}},
    "consistency": {"enhancements": {"consistency": True}},
    "spectral (Frobenius)": {"enhancements": {"spectral": True}},
    "adaptive (uncertainty)": {"adaptive": "uncertainty"},
    "all (large_dataset)": {"enhancements": {"robust": True, "perceptual": True, "consistency": True,
                                             "spectral": True}, "adaptive": "uncertainty"},
}


def make_step(variant: dict, image_size: int, batch_size: int):
    # here, not at the top: loads torch only where this runs
    import torch

    from losstune.trainables.families import latent_conditioner as lc

    # the augmentation block on every step, so consistency always pays its second forward
    cfg = make_config(lc, {"data": {"image_size": image_size, "num_train": batch_size, "num_val": 1},
                           "augment": {"outline_p": 1.0}, "loss": variant})
    torch.manual_seed(0)
    parts = lc.build(cfg)
    model, batch = parts.model, parts.train_set[:batch_size]
    optimizers = [group.optimizer for group in lc.optimizer_groups(model, cfg)]
    weights = lc.term_weights(cfg)

    def step() -> float:
        started = time.perf_counter()
        terms, _ = lc.loss_terms(model, batch, cfg)
        total, _ = lc.combine(model, {k: weights[k] * v for k, v in terms.items()}, cfg)
        for optimizer in optimizers:
            optimizer.zero_grad()
        total.backward()
        for optimizer in optimizers:
            optimizer.step()
        return time.perf_counter() - started

    return step


def main() -> None:
    # here, not at the top: loads torch only where this runs
    import torch

    from losstune.models.latent_conditioner import LatentConditioner

    p = argparse.ArgumentParser()
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3, help="timed steps per variant, after one warm-up")
    p.add_argument("--threads", type=int, default=1, help="torch threads (a 1-CPU Ray worker has 1)")
    p.add_argument("--quick", action="store_true", help="64x64 images, 2 repeats")
    args = p.parse_args()
    size, repeats = (64, 2) if args.quick else (args.image_size, args.repeats)
    torch.set_num_threads(args.threads)
    steps = {name: make_step(variant, size, args.batch) for name, variant in VARIANTS.items()}
    for step in steps.values():
        step()  # warm-up
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():  # interleaved
            times[name].append(step())
    base = statistics.median(times["baseline (current loss)"])
    params = sum(p.numel() for p in LatentConditioner().parameters())
    print(f"latent conditioner, {size}x{size}, batch {args.batch}, {args.threads} thread(s), {os.cpu_count()} CPUs, "
          f"median of {repeats} steps; default model {params:,} parameters")
    for name in steps:
        t = statistics.median(times[name])
        print(f"  {name:<26} {t:7.2f} s/step  {t / base - 1:+7.1%}")
    print(f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
