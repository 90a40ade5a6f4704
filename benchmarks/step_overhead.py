"""python benchmarks/step_overhead.py [--family hdr_patch] [--epochs 6] [--quick]

Side by side in one run, for one family at its default config on this machine:
  * step time of a bare PyTorch loop (same model, batch, data, loss, clipping and schedule; one
    thread, as Ray gives a 1-CPU worker) and of the platform (the family's trainable inside a
    TorchTrainer with Accelerate); both are whole-epoch time over steps, data loading included,
    median of epochs after the first; and their ratio (target <= 1.03);
  * what reporting and checkpointing add per epoch, from the timeline marks of two platform runs
    (validation done -> report returned): one that reports without a checkpoint on every epoch
    but the last, one that checkpoints every epoch. Train's controller polls its workers as it does
    in a sweep (trainables/driver.py); a report waits for that poll.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine, platform_run, read_timeline, scratch, start_local_ray  # noqa: E402
from trainables.driver import poll_like_a_sweep  # noqa: E402


def bare_step_seconds(family, cfg, epochs: int) -> float:
    """The family's loss through a plain PyTorch loop: AdamW, clipping, the same LR schedule."""
    from dataclasses import asdict

    import torch

    from trainables.loop import make_scheduler

    torch.set_num_threads(1)
    torch.manual_seed(cfg.train.seed)
    parts = family.build(cfg)
    model = parts.model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                                  betas=(cfg.optim.beta1, cfg.optim.beta2))
    loader = torch.utils.data.DataLoader(parts.train_set, batch_size=cfg.train.batch_size, shuffle=True,
                                         drop_last=True)
    scheduler = make_scheduler(optimizer, cfg, total_steps=epochs * len(loader))
    weights = asdict(cfg.loss.weights)
    per_step = []
    model.train()
    for _ in range(epochs):
        started = time.perf_counter()
        for batch in loader:
            terms, _ = family.loss_terms(model, batch, cfg)
            loss = sum(weights[k] * v for k, v in terms.items())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
            optimizer.step()
            scheduler.step()
        per_step.append((time.perf_counter() - started) / len(loader))
    return statistics.median(per_step[1:])


def report_seconds(marks: list[dict], pid: int, epochs: range) -> list[float]:
    """validation done -> report returned, per epoch of one worker process."""
    at = {(m["event"], m.get("epoch")): m["t"] for m in marks if m["pid"] == pid}
    return [at[("reported", e)] - at[("validated", e)] for e in epochs]


def worker_pid(marks: list[dict], run: str) -> int:
    return next(m["pid"] for m in marks if m["event"] == "loop_entered" and m["run"] == run)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--family", default="hdr_patch")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--quick", action="store_true", help="4 epochs")
    args = p.parse_args()
    epochs = 4 if args.quick else args.epochs

    from trainables.families import family_module, make_config

    family = family_module(args.family)
    overrides = {"train": {"epochs": epochs, "checkpoint_every": 0}}
    cfg = make_config(family, overrides)
    folder = scratch("step")
    # Ray's daemons run during both measurements, and the bare loop runs before and after the
    # platform's, so that load drifting over the run hits both alike.
    start_local_ray(os.path.join(folder, "timeline.jsonl"))
    poll_like_a_sweep()
    bare_before = bare_step_seconds(family, cfg, epochs)
    reports = platform_run(args.family, overrides, folder, "no_checkpoints")
    bare = statistics.median([bare_before, bare_step_seconds(family, cfg, epochs)])
    platform_run(args.family, {"train": {"epochs": epochs, "checkpoint_every": 1}}, folder, "checkpoint_every_epoch")
    marks = read_timeline(os.environ["LOSSTUNE_TIMELINE"])
    steps = [cfg.train.batch_size / r["samples_per_s"] for r in reports[1:]]
    platform = statistics.median(steps)
    plain = report_seconds(marks, worker_pid(marks, "no_checkpoints"), range(1, epochs))  # the last checkpoints
    with_ckpt = report_seconds(marks, worker_pid(marks, "checkpoint_every_epoch"), range(1, epochs + 1))
    epoch_s = statistics.median(r["time/epoch_s"] for r in reports[1:])
    print(f"{args.family} default config, batch {cfg.train.batch_size}, {epochs} epochs ({machine()}):")
    print(f"step time  bare PyTorch {bare * 1e3:.1f} ms | platform (TorchTrainer + Accelerate) "
          f"{platform * 1e3:.1f} ms | ratio {platform / bare:.3f} (target <= 1.03)")
    print(f"per epoch ({epoch_s:.2f} s of train + validation): report {statistics.median(plain) * 1e3:.0f} ms; "
          f"checkpoint + report {statistics.median(with_ckpt) * 1e3:.0f} ms "
          f"({statistics.median(with_ckpt) / epoch_s:.1%} of the epoch)")


if __name__ == "__main__":
    main()
