"""python benchmarks/lgt_energy.py [--batch 48] [--repeats 30] [--quick]

Seed 002's two efficiency claims about the lgt energy, measured side by side in one run:
  1. SSM memory: the self-similarity distance (forward + backward) at batch 48 on 4x32x32 latents
     with 256 sampled positions vs all 1024. The seed claims 1 GB -> 62.5 MB (16x). Peak memory is
     the CUDA allocator's peak on a GPU; on CPU, the peak RSS growth of a fresh process per setting
     (so one setting's freed memory cannot hide the other's).
  2. SWD time with and without `.contiguous()` after unfold + transpose (forward + backward,
     8192 sampled patches, 64 projections); the two variants' runs interleaved, medians compared.
     The seed claims 5-10% faster on Volta/Turing GPUs.
  3. How far the flow transfers style with the seed's global SWD (the batch's patches pooled, so
     only the mixture of styles is matched) vs stratified SWD (each output against its own
     reference, the seed's "next step" 4): the same small CPU model, data and seed trained for a
     few epochs with each, then the validation identity ratio (1 = no transfer) and content SSM.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import in_fresh_process, machine  # noqa: E402

LATENT = (4, 32, 32)  # seed: 4x32x32 latents


def ssm_peak_mb(batch: int, positions: int) -> float:
    """Peak memory of one forward + backward of ssm_distance, in this process."""
    # here, not at the top: loads torch only where this runs
    import torch

    from losstune.losses.energy import ssm_distance
    from losstune.trainables.engine.worker_setup import peak_rss_mb

    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randn(batch, *LATENT, device=device, requires_grad=True)
    y = torch.randn(batch, *LATENT, device=device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = peak_rss_mb() * 2**20
    ssm_distance(x, y, positions).backward()
    if device == "cuda":
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    return (peak_rss_mb() * 2**20 - before) / 2**20


def swd_times(batch: int, repeats: int) -> dict:
    """Median seconds of forward + backward of patch_swd, with and without .contiguous()."""
    # here, not at the top: loads torch only where this runs
    import torch

    from losstune.losses.energy import patch_swd

    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randn(batch, *LATENT, device=device, requires_grad=True)
    y = torch.randn(batch, *LATENT, device=device)
    times = {True: [], False: []}
    for i in range(repeats + 3):  # 3 warm-up rounds
        for contiguous in (True, False):
            generator = torch.Generator(device=device).manual_seed(i)
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            patch_swd(x, y, 64, 8192, generator=generator, contiguous=contiguous).backward()
            if device == "cuda":
                torch.cuda.synchronize()
            if i >= 3:
                times[contiguous].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def transfer(stratified: bool, epochs: int) -> dict:
    """Validation metrics after `epochs` of the smoke-size flow on 128 synthetic 16x16 latents."""
    # here, not at the top: loads torch only where this runs
    import torch
    from torch.utils.data import DataLoader

    from losstune.trainables.families import lgt
    from losstune.trainables.config import merge
    from losstune.trainables.family_api import make_config

    torch.manual_seed(0)
    cfg = make_config(lgt, merge(lgt.SMOKE, {"data": {"num_train": 128, "num_val": 32},
                                             "loss": {"stratified": stratified}, "optim": {"lr": 1e-3}}))
    parts = lgt.build(cfg)
    optimizer = torch.optim.AdamW(parts.model.parameters(), lr=cfg.optim.lr)
    weights = lgt.term_weights(cfg)
    loader = DataLoader(parts.train_set, batch_size=cfg.train.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    for _ in range(epochs):
        for batch in loader:
            terms, _ = lgt.loss_terms(parts.model, batch, cfg)
            optimizer.zero_grad()
            sum(weights[name] * value for name, value in terms.items()).backward()
            torch.nn.utils.clip_grad_norm_(parts.model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
    values = lgt.val_metrics(parts.model, next(iter(DataLoader(parts.val_set, batch_size=32))), cfg, {})
    return {name: float(v.mean()) for name, v in values.items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=48)  # seed: batch 48
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--epochs", type=int, default=8, help="training epochs of the transfer comparison")
    p.add_argument("--quick", action="store_true", help="10 SWD repeats, 3 epochs")
    args = p.parse_args()
    repeats, epochs = (10, 3) if args.quick else (args.repeats, args.epochs)
    sampled = in_fresh_process("lgt_energy", "ssm_peak_mb", args.batch, 256)
    full = in_fresh_process("lgt_energy", "ssm_peak_mb", args.batch, 0)
    times = swd_times(args.batch, repeats)
    print(f"lgt energy, batch {args.batch} of {'x'.join(map(str, LATENT))} latents ({machine()}):")
    print(f"  SSM peak memory, forward + backward: all 1024 positions {full:.1f} MB, 256 sampled {sampled:.1f} MB, "
          f"ratio {full / max(sampled, 1e-9):.1f}x (seed: 1 GB -> 62.5 MB, 16x)")
    change = (times[False] - times[True]) / times[False] * 100
    print(f"  SWD forward + backward, median of {repeats}: contiguous {times[True] * 1e3:.2f} ms, "
          f"not contiguous {times[False] * 1e3:.2f} ms; contiguous is {change:+.1f}% faster (seed: 5-10% on GPU)")
    pooled, stratified = transfer(False, epochs), transfer(True, epochs)
    for name, values in (("global (seed)", pooled), ("stratified", stratified)):
        print(f"  after {epochs} epochs with {name} SWD: identity ratio {values['identity_ratio']:.3f}, "
              f"style SWD {values['style_swd']:.4f}, content SSM {values['content_ssm']:.4f}")
    print(json.dumps({"ssm_mb_all": full, "ssm_mb_256": sampled, "swd_ms_contiguous": times[True] * 1e3,
                      "swd_ms_strided": times[False] * 1e3, "global": pooled, "stratified": stratified}))


if __name__ == "__main__":
    main()
