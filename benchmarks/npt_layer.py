"""python benchmarks/npt_layer.py [--seeds 0 1 2] [--epochs 10] [--quick]

Two figures for the npt family (seed 003), each measured side by side in one run:
  1. Tokens/s of the NPT layer (teacher attention -> NP component -> rank-1-modulated MLP) vs the
     teacher layer (attention + MLP) at d_model 256, batch 16 x 64 tokens, forward only, the two
     interleaved; and of one NPT training step (forward + backward through the NP component).
  2. Whether the seed's documented loss weights beat uniform weights (every term 1) on
     `val/fidelity_mse`: one platform run of each per seed (ray_jobs.sweep, 1 trial, the same
     data, teacher and training seed), final values compared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine, run_sweep, scratch, start_local_ray  # noqa: E402


def tokens_per_second(repeats: int) -> dict:
    import torch

    from losstune.models.npt import NPTModel, rank_one_update

    model = NPTModel(vocab=64)  # the family's defaults: d_model 256, 4 heads, d_ffn 688, rank 32
    tokens = torch.randint(0, 64, (16, 64))
    h = model.hidden_states(tokens)
    teacher = model.teacher

    def teacher_forward():
        return teacher(h)

    def npt_forward():
        attention = teacher.attention(h)
        v_a, v_b = model.np(attention)
        n = teacher.mlp_norm(h)
        return h + teacher.mlp(n, gate_extra=rank_one_update(n, v_a, v_b))

    def npt_train_step():
        out = model(tokens)
        (out["npt_output"] - out["teacher_output"]).pow(2).mean().backward()

    times = {"teacher": [], "npt": [], "npt_train": []}
    for i in range(repeats + 3):  # 3 warm-up rounds
        for name, fn in (("teacher", teacher_forward), ("npt", npt_forward), ("npt_train", npt_train_step)):
            start = time.perf_counter()
            if name == "npt_train":
                fn()
            else:
                with torch.no_grad():
                    fn()
            if i >= 3:
                times[name].append(time.perf_counter() - start)
    return {name: tokens.numel() / statistics.median(values) for name, values in times.items()}


def weights_comparison(seeds: list[int], epochs: int, folder: str) -> list[dict]:
    rows = []
    for seed in seeds:
        row = {"seed": seed}
        for label, extra in (("documented", []), ("uniform", ["--preset", "uniform"])):
            table, _, _ = run_sweep(["npt", "--trials", "1", "--scheduler", "none", "--seed", str(seed), "--epochs",
                                     str(epochs), "--storage", folder, "--name", f"{label}-{seed}", *extra])
            row[label] = float(table.loc[0, "objective"])
        rows.append(row)
        print(f"  seed {seed}: documented {row['documented']:.6f}, uniform {row['uniform']:.6f}", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--quick", action="store_true", help="1 seed, 3 epochs, 10 timing repeats")
    args = p.parse_args()
    seeds, epochs, repeats = (args.seeds[:1], 3, 10) if args.quick else (args.seeds, args.epochs, args.repeats)
    speed = tokens_per_second(repeats)
    print(f"npt at d_model 256, batch 16 x 64 tokens ({machine()}, {__import__('torch').get_num_threads()} threads):")
    print(f"  forward tokens/s: teacher layer {speed['teacher']:,.0f}, NPT layer {speed['npt']:,.0f} "
          f"(ratio {speed['npt'] / speed['teacher']:.2f}); NPT training step {speed['npt_train']:,.0f} tokens/s")
    start_local_ray()
    print(f"documented vs uniform weights, final val/fidelity_mse after {epochs} epochs (lower is better):")
    rows = weights_comparison(seeds, epochs, scratch("npt"))
    wins = sum(r["documented"] < r["uniform"] for r in rows)
    mean_change = statistics.mean((r["documented"] - r["uniform"]) / r["uniform"] * 100 for r in rows)
    print(f"  documented better in {wins} of {len(rows)} seeds; mean change vs uniform {mean_change:+.2f}%")


if __name__ == "__main__":
    main()
