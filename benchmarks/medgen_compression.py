"""python benchmarks/medgen_compression.py [--rounds 5] [--steps 4] [--quick] [--seed-size]

medgen_compression's training step per model on this machine: VAE, VQ-VAE and DC-AE (f32c32) on
2D bravo slices, DC-AE seg compression, and the 3D VAE and VQ-VAE, each with its GAN where the
seed has one (VAE, VQ-VAE), at the `small` preset (64 px slices, 64x64x32 volumes, narrow
networks, no perceptual term) or, with --seed-size, at the seed's own sizes (256 px, 256x256x160:
a GPU's job). On a GPU each model is timed in fp32 and in bf16 autocast (seed "Precision
Configuration"), and their ratio printed.

Step time is the shared loop's own `run_epoch` (both optimiser groups: the generator's loss and
backward, the discriminator's, clipping, both AdamW steps) over `--steps` batches of the real data
path (phantom NIfTI files), divided by the steps; the median over `--rounds` rounds, the models
interleaved. Peak memory: the peak RSS (CPU) or peak CUDA allocation (GPU) of a fresh process
that builds the data and model and runs one round.
"""

from __future__ import annotations

import itertools
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import in_fresh_process, interleaved_medians, machine  # noqa: E402

MODELS = {  # name: (preset, overrides)
    "vae": ("vae", {}),
    "vqvae": ("vqvae", {}),
    "dcae_f32": ("f32", {}),
    "dcae_seg": ("seg_compression", {}),
    "vae_3d": ("vae_3d", {"train": {"batch_size": 2}}),
    "vqvae_3d": ("vqvae_3d", {"train": {"batch_size": 2}}),
}
SMALL = {"data": {"phantom_shape": [64, 64, 32], "subjects": 6}}
SEED_SIZE = {"loss": {"weights": {"perceptual": 0.0}}, "data": {"phantom_shape": [256, 256, 160], "subjects": 3},
             "train": {"batch_size": 4}}


def setup(name: str, seed_size: bool, precision: str):
    """(config, run) for one model, its optimiser groups prepared as the loop prepares them."""
    # here, not at the top: loads torch, accelerate only where this runs
    import torch
    from accelerate import Accelerator

    from losstune.trainables.config import merge
    from losstune.trainables.family_api import make_config
    from losstune.trainables.registry import load_family
    from losstune.trainables.engine.step import Run
    from losstune.trainables.engine.optimizer_groups import prepare_groups

    preset, extra = MODELS[name]
    family = load_family("medgen_compression")
    sizes = SEED_SIZE if seed_size else merge(family.presets["small"], SMALL)
    cfg = make_config(family, merge(merge(family.presets[preset], sizes), merge(extra, {"gan": {"start_epoch": 0}})))
    torch.manual_seed(0)
    parts = family.build(cfg)
    loader = torch.utils.data.DataLoader(parts.train_set, batch_size=cfg.train.batch_size, shuffle=True,
                                         drop_last=True)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=precision)
    model = accelerator.prepare(parts.model)
    groups = prepare_groups(accelerator, family, family.optimizer_groups(parts.model, cfg), cfg, total_steps=1000)
    return cfg, Run(accelerator, model, groups, family, cfg), loader


def one_round(state, steps: int) -> float:
    """Seconds per step of `steps` steps through the shared loop's run_epoch."""
    # here, not at the top: loads torch only where this runs
    import torch

    from losstune.trainables.engine.loop import run_epoch

    cfg, run, loader = state
    batches = [[t.to(run.accelerator.device) for t in b] for b in itertools.islice(itertools.cycle(loader), steps)]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    run_epoch(run, batches, step=0)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / steps


def peak_memory(name: str, seed_size: bool, precision: str, steps: int) -> float:
    """In this (fresh) process: the peak memory (MB) after building and one round."""
    # here, not at the top: loads torch only where this runs
    from losstune.trainables.engine.worker_setup import peak_memory_mb

    one_round(setup(name, seed_size, precision), steps)
    return peak_memory_mb()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--quick", action="store_true", help="2 rounds of 2 steps")
    p.add_argument("--seed-size", action="store_true", help="the seed's image and volume sizes (a GPU's job)")
    p.add_argument("--models", nargs="*", choices=list(MODELS), default=list(MODELS))
    args = p.parse_args(argv)
    rounds, steps = (2, 2) if args.quick else (args.rounds, args.steps)
    # here, not at the top: loads torch only where this runs
    import torch

    precisions = ["no", "bf16"] if torch.cuda.is_available() else ["no"]
    print(f"# {machine()}; {rounds} rounds x {steps} steps; {'seed sizes' if args.seed_size else 'small preset'}")
    states = {(m, pr): setup(m, args.seed_size, pr) for m in args.models for pr in precisions}
    medians = interleaved_medians(states, one_round, rounds, steps)
    for (name, precision), state in states.items():
        median = medians[(name, precision)]
        batch = state[0].train.batch_size
        ratio = f" ({median / medians[(name, 'no')]:.2f}x fp32)" if precision != "no" else ""
        memory = in_fresh_process("medgen_compression", "peak_memory", name, args.seed_size, precision, steps)
        print(f"{name:9s} {'fp32' if precision == 'no' else precision:4s} batch {batch:2d}: step "
              f"{median * 1000:8.1f} ms{ratio}, {batch / median:6.1f} samples/s, peak memory {memory:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
