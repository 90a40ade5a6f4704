"""python benchmarks/medgen_step.py [--rounds 5] [--steps 4] [--quick]

medgen_diffusion's training step on this machine with the `small` preset (widths 32/64/64):
2D bravo at 64x64 (batch 16) and 3D bravo at 32^3 (batch 2), each with
  - plain: the documented default (RFlow, AdamW, no regulariser),
  - regularised: every clean regulariser of the seed on (curriculum, jitter, noise augmentation,
    feature perturbation, self-conditioning, gradient noise),
  - sam: SAM with rho 0.05 (two forward-backward passes; the seed says ~2x compute),
  - einsum_attention: the default with MONAI's einsum attention instead of torch's
    scaled_dot_product_attention (`model.flash_attention=false`), which materialises every
    attention matrix.
Step time is the shared loop's own `run_epoch` (loss, backward, clipping, tricks, AdamW step) over
`--steps` batches of the real data path (phantom NIfTI files), divided by the steps; the median
over `--rounds` rounds, the variants interleaved so that machine noise hits them alike. Peak
memory is the peak RSS (VmHWM) of a fresh process that builds the data and model and runs one round.
"""

from __future__ import annotations

import itertools
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import in_fresh_process, interleaved_medians, machine  # noqa: E402

SETTINGS = {
    "2d_64": {"model": {"spatial_dims": 2}, "data": {"image_size": 64, "phantom_shape": [64, 64, 32]},
              "train": {"batch_size": 16}},
    "3d_32": {"model": {"spatial_dims": 3}, "data": {"volume": [32, 32, 32], "phantom_shape": [32, 32, 32],
                                                     "subjects": 12},
              "train": {"batch_size": 2}},
}
VARIANTS = {  # name: (preset, overrides)
    "plain": ("", {}), "regularised": ("regularised", {}), "sam": ("", {"optim": {"sam_rho": 0.05}}),
    "einsum_attention": ("", {"model": {"flash_attention": False}})}


def setup(setting: str, variant: str):
    """(config, model, loader, optimizer, scheduler, accelerator, params) for one setting."""
    # here, not at the top: loads torch, accelerate only where this runs
    import torch
    from accelerate import Accelerator

    from losstune.trainables.config import merge
    from losstune.trainables.family_api import make_config
    from losstune.trainables.registry import load_family
    from losstune.trainables.engine.lr_schedules import make_lr_schedule

    preset, extra = VARIANTS[variant]
    medgen = load_family("medgen_diffusion")
    cfg = make_config(medgen, merge(merge(medgen.presets["small"], SETTINGS[setting]), extra), preset)
    torch.manual_seed(0)
    parts = medgen.build(cfg)
    loader = torch.utils.data.DataLoader(parts.train_set, batch_size=cfg.train.batch_size, shuffle=True,
                                         drop_last=True)
    params = [p for p in parts.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr)
    scheduler = make_lr_schedule(optimizer, cfg, total_steps=1000)
    accelerator = Accelerator(cpu=True)
    return cfg, parts.model, loader, optimizer, scheduler, accelerator, params


def one_round(state, steps: int) -> float:
    """Seconds per step of `steps` steps through the shared loop's run_epoch."""
    from losstune.trainables.registry import load_family
    from losstune.trainables.engine.loop import run_epoch
    from losstune.trainables.engine.step import Run
    from losstune.trainables.engine.optimizer_groups import TrainedGroup
    from losstune.trainables.engine.optim_tricks import GradientNoise

    cfg, model, loader, optimizer, scheduler, accelerator, params = state
    batches = list(itertools.islice(itertools.cycle(loader), steps))
    opt = cfg.optim
    noise = GradientNoise(opt.grad_noise_sigma, opt.grad_noise_decay, 0, accelerator.device) if opt.grad_noise_sigma else None
    started = time.perf_counter()
    group = TrainedGroup("model", optimizer, params, schedule=scheduler)
    run_epoch(Run(accelerator, model, [group], load_family("medgen_diffusion"), cfg, noise=noise), batches, step=0)
    return (time.perf_counter() - started) / steps


def peak_rss(setting: str, variant: str, steps: int) -> dict:
    """In this (fresh) process: the peak RSS before building, and after one round."""
    # here, not at the top: loads torch only where this runs
    from losstune.trainables.engine.worker_setup import peak_rss_mb

    before = peak_rss_mb()
    state = setup(setting, variant)
    one_round(state, steps)
    return {"before_mb": before, "peak_mb": peak_rss_mb()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--quick", action="store_true", help="2 rounds of 2 steps")
    args = p.parse_args(argv)
    rounds, steps = (2, 2) if args.quick else (args.rounds, args.steps)
    # here, not at the top: loads torch only where this runs
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    print(f"# {machine()}; torch threads {torch.get_num_threads()}; {rounds} rounds x {steps} steps, small preset")
    for setting in SETTINGS:
        states = {variant: setup(setting, variant) for variant in VARIANTS}
        medians = interleaved_medians(states, one_round, rounds, steps)
        plain = medians["plain"]
        batch = states["plain"][0].train.batch_size
        for variant in VARIANTS:
            median = medians[variant]
            memory = in_fresh_process("medgen_step", "peak_rss", setting, variant, steps)
            print(f"{setting:6s} {variant:16s} batch {batch:2d}: step {median * 1000:8.1f} ms "
                  f"({median / plain:.2f}x plain), {batch / median:6.1f} samples/s, "
                  f"peak RSS {memory['peak_mb']:.0f} MB (after imports {memory['before_mb']:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
