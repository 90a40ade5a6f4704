"""python benchmarks/platform_overhead.py [--runs 3] [--epochs 3]

Side by side in one run, for the hdr_patch default config on this machine:
  * step time of the bare PyTorch loop (same model, batch, data, one thread) and of the platform's
    trainable inside a TorchTrainer with Accelerate (batch / samples_per_s, median of epochs >= 2),
    and their ratio;
  * a TorchTrainer run's fixed overhead: from fit() to the first report minus that epoch's own
    compute (worker start, imports, process group, data build), and from the last report to fit()
    returning (teardown). Median and max over --runs runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bare_step_seconds(cfg, steps: int) -> float:
    import torch
    from dataclasses import asdict

    from trainables import hdr_patch

    torch.set_num_threads(1)
    parts = hdr_patch.build(cfg)
    model = parts.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    loader = torch.utils.data.DataLoader(parts.train_set, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True)
    weights = asdict(cfg.loss.weights)
    times = []
    while len(times) < steps:
        for batch in loader:
            started = time.perf_counter()
            terms, _ = hdr_patch.loss_terms(model, batch, cfg)
            loss = sum(weights[k] * v for k, v in terms.items())
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            times.append(time.perf_counter() - started)
    return statistics.median(times[10:])


def platform_run(config: dict, storage: str, name: str):
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.train.v2.api.callback import UserCallback

    from trainables import hdr_patch

    log = os.path.join(storage, f"{name}.jsonl")

    class Recorder(UserCallback):
        def after_report(self, run_context, metrics, checkpoint):
            with open(log, "a") as f:
                f.write(json.dumps({"wall": time.time(), **{k: v for k, v in metrics[0].items()
                                                            if isinstance(v, (int, float))}}) + "\n")

    trainer = TorchTrainer(hdr_patch.train_loop_per_worker, train_loop_config=config,
                           scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
                           run_config=ray.train.RunConfig(name=name, storage_path=storage, callbacks=[Recorder()]))
    started = time.time()
    trainer.fit()
    ended = time.time()
    reports = [json.loads(line) for line in open(log)]
    startup = reports[0]["wall"] - started - reports[0]["time/epoch_s"]
    teardown = ended - reports[-1]["wall"]
    batch = config["train"].get("batch_size", 32)
    step_s = [batch / r["samples_per_s"] for r in reports[1:]]
    return startup, teardown, statistics.median(step_s)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    import ray

    from trainables import hdr_patch
    from trainables.families import make_config

    overrides = {"train": {"epochs": args.epochs, "checkpoint_every": 0, "batch_size": 32}, "health": {"max_overflow_frac": 1.0}}
    cfg = make_config(hdr_patch, overrides)
    bare = bare_step_seconds(cfg, steps=60)
    ray.init(num_cpus=os.cpu_count(), log_to_driver=False)
    storage = tempfile.mkdtemp()
    runs = [platform_run(overrides, storage, f"run{i}") for i in range(args.runs)]
    startups, teardowns, steps = zip(*runs)
    platform = statistics.median(steps)
    print(f"machine: {os.cpu_count()} CPUs; config: hdr_patch default, batch {cfg.train.batch_size}, "
          f"{cfg.data.patch_size}x{cfg.data.patch_size} patches")
    print(f"step time  bare PyTorch {bare * 1e3:.1f} ms | platform (TorchTrainer + Accelerate) "
          f"{platform * 1e3:.1f} ms | ratio {platform / bare:.3f}")
    print(f"fixed overhead per run over {args.runs} runs: fit() to first step median {statistics.median(startups):.1f} s "
          f"(max {max(startups):.1f}); teardown median {statistics.median(teardowns):.1f} s (max {max(teardowns):.1f})")


if __name__ == "__main__":
    main()
