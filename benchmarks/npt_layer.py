"""python benchmarks/npt_layer.py [--seeds 0 1 2] [--epochs 10] [--quick] [--checkpoint DIR [--layer-index N]]

Two figures for the npt family (seed 003), each measured side by side in one run:
  1. Tokens/s of the NPT layer (teacher attention -> NP component -> rank-1-modulated MLP) vs the
     teacher layer (attention + MLP), forward only, the two interleaved; and of one NPT training
     step (forward + backward through the NP component). At d_model 256, batch 16 x 64 tokens; with
     --checkpoint, at that Hugging Face checkpoint's real width, on its layer --layer-index fed the
     hidden states its earlier layers give random tokens (batch --batch x --seq-len), in float32
     and, on a GPU, in bf16 autocast too, with CUDA's peak memory of the training step.
  2. Whether the seed's documented loss weights beat uniform weights (every term 1) on
     `val/fidelity_mse`: one platform run of each per seed (ray_jobs.sweep, 1 trial, the same
     data, teacher and training seed), final values compared (skipped with --checkpoint).
And with --widths: the memory a run needs per model width, from the layer's shapes (no weights).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine, run_sweep, scratch, start_local_ray  # noqa: E402

# (name, LayerShape fields) of common checkpoints, from their config.json files
WIDTHS = [
    ("Qwen2-0.5B", dict(d_model=896, heads=14, kv_heads=2, d_ffn=4864, qkv_bias=True)),
    ("Llama-3.2-1B", dict(d_model=2048, heads=32, kv_heads=8, d_ffn=8192)),
    ("Llama-2-7B", dict(d_model=4096, heads=32, kv_heads=32, d_ffn=11008)),
    ("Llama-3.1-8B / Mistral-7B", dict(d_model=4096, heads=32, kv_heads=8, d_ffn=14336)),
    ("Llama-2-13B", dict(d_model=5120, heads=40, kv_heads=40, d_ffn=13824)),
]


def default_model():
    """The family's default random teacher (d_model 256, 4 heads, d_ffn 688, rank 32) and token ids."""
    # here, not at the top: loads torch only where this runs
    import torch

    from losstune.models.npt import random_teacher_model

    return random_teacher_model(vocab=64), torch.randint(0, 64, (16, 64))


def checkpoint_model(folder: str, layer_index: int, batch: int, seq_len: int, np_rank: int):
    """The checkpoint's layer as the teacher (float32, on the GPU where there is one) and the
    hidden states its earlier layers give `batch` random token sequences, as the family builds them."""
    # here, not at the top: loads torch only where this runs
    import torch

    from losstune.data.npt_checkpoint import read_checkpoint
    from losstune.trainables.families.npt_parts import checkpoint_model as build

    device = "cuda" if torch.cuda.is_available() else "cpu"
    checkpoint = read_checkpoint(folder, layer_index, seq_len)
    tokens = torch.randint(0, len(checkpoint.tokenizer), (batch, seq_len)).numpy()
    model, states = build(checkpoint, layer_index, [tokens], device, np_rank)
    return model.to(device), states.to(device), checkpoint.shape


def tokens_per_second(model, inputs, repeats: int, bf16: bool = False) -> dict:
    """Median tokens/s of the teacher layer, the NPT layer (forward) and an NPT training step,
    interleaved; with the training step's peak CUDA memory (MB) on a GPU."""
    # here, not at the top: loads torch only where this runs
    import torch

    from losstune.models.npt import rank_one_update

    cuda = inputs.is_cuda
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.no_grad():
        h = model.hidden_states(inputs)
    teacher = model.teacher

    def npt_forward():
        attention = teacher.attention(h)
        v_a, v_b = model.np(attention)
        n = teacher.mlp_norm(h)
        return h + teacher.mlp(n, gate_extra=rank_one_update(n, v_a, v_b))

    def npt_train_step():
        out = model(inputs)
        (out["npt_output"].float() - out["teacher_output"].float()).pow(2).mean().backward()

    steps = (("teacher", lambda: teacher(h)), ("npt", npt_forward), ("npt_train", npt_train_step))
    times = {name: [] for name, _ in steps}
    peak = 0.0
    for i in range(repeats + 3):  # 3 warm-up rounds
        for name, fn in steps:
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            with autocast, (contextlib.nullcontext() if name == "npt_train" else torch.no_grad()):
                fn()
            if cuda:
                torch.cuda.synchronize()
                if name == "npt_train":
                    peak = max(peak, torch.cuda.max_memory_allocated() / 2**20)
            if i >= 3:
                times[name].append(time.perf_counter() - start)
    rates = {name: inputs.shape[0] * inputs.shape[1] / statistics.median(values) for name, values in times.items()}
    return {**rates, "peak_train_mb": peak}


def print_speed(label: str, speed: dict) -> None:
    peak = f"; training step peak CUDA memory {speed['peak_train_mb']:,.0f} MB" if speed["peak_train_mb"] else ""
    print(f"  {label} forward tokens/s: teacher layer {speed['teacher']:,.0f}, NPT layer {speed['npt']:,.0f} "
          f"(ratio {speed['npt'] / speed['teacher']:.2f}); NPT training step {speed['npt_train']:,.0f} tokens/s{peak}")


def memory_of(shape, np_rank: int = 32, seq_len: int = 256) -> dict:
    """MB a run holds, from the shapes: the teacher layer in float32 on the device (its weights are
    frozen: no gradients, no optimiser state), the NP component with its gradients and two AdamW
    moments, the hidden states of 1,000 sequences in the worker's host memory in bf16 (a bf16
    checkpoint's on a GPU; float32 on a CPU is twice), and each earlier layer, which the worker
    loads in bf16 on the device once to compute those states, then frees."""
    # here, not at the top: loads torch only where this runs
    import torch

    from losstune.models.npt import NPComponent, TeacherLayer

    with torch.device("meta"):
        layer = sum(p.numel() for p in TeacherLayer(shape).parameters())
        np_params = sum(p.numel() for p in NPComponent(shape.d_model, shape.d_ffn, np_rank).parameters())
    mb = 2**20
    return {"teacher_mb": layer * 4 / mb, "np_mb": np_params * 4 * 4 / mb, "earlier_layer_mb": layer * 2 / mb,
            "states_mb": 1000 * seq_len * shape.d_model * 2 / mb}


def print_widths(seq_len: int, np_rank: int) -> None:
    # here, not at the top: loads torch only where this runs
    from losstune.models.npt import LayerShape

    print(f"memory per width (from the shapes; np_rank {np_rank}, seq_len {seq_len}):")
    print(f"  {'model':<26} {'d_model':>7} {'d_ffn':>6} {'teacher fp32':>13} {'NP + AdamW':>11} "
          f"{'earlier layer bf16':>19} {'states / 1k seq bf16':>21}")
    for name, fields in WIDTHS:
        shape = LayerShape(**fields)
        m = memory_of(shape, np_rank, seq_len)
        print(f"  {name:<26} {shape.d_model:>7} {shape.d_ffn:>6} {m['teacher_mb']:>10,.0f} MB {m['np_mb']:>8,.0f} MB "
              f"{m['earlier_layer_mb']:>16,.0f} MB {m['states_mb']:>18,.0f} MB")


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
    # here, not at the top: loads torch only where this runs
    import torch

    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--quick", action="store_true", help="1 seed, 3 epochs, 10 timing repeats")
    p.add_argument("--checkpoint", default="", help="a local Hugging Face checkpoint folder: time its real layer")
    p.add_argument("--layer-index", type=int, default=0)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--np-rank", type=int, default=32)
    p.add_argument("--widths", action="store_true", help="only the memory per width, from the shapes")
    args = p.parse_args()
    if args.widths:
        print_widths(args.seq_len, args.np_rank)
        return
    seeds, epochs, repeats = (args.seeds[:1], 3, 10) if args.quick else (args.seeds, args.epochs, args.repeats)
    threads = f"{torch.get_num_threads()} threads"
    if args.checkpoint:
        model, states, shape = checkpoint_model(args.checkpoint, args.layer_index, args.batch, args.seq_len,
                                                args.np_rank)
        print(f"npt on {args.checkpoint} layer {args.layer_index} (d_model {shape.d_model}, d_ffn {shape.d_ffn}, "
              f"{shape.heads} heads / {shape.kv} kv), batch {args.batch} x {args.seq_len} tokens "
              f"({machine()}, {threads}):")
        print_speed("float32", tokens_per_second(model, states, repeats))
        if states.is_cuda:
            print_speed("bf16 autocast", tokens_per_second(model, states, repeats, bf16=True))
        m = memory_of(shape, args.np_rank, args.seq_len)
        print(f"  from the shapes: teacher layer {m['teacher_mb']:,.0f} MB fp32, NP component with AdamW "
              f"{m['np_mb']:,.0f} MB, hidden states {m['states_mb']:,.0f} MB per 1,000 sequences in bf16")
        return
    model, tokens = default_model()
    print(f"npt at d_model 256, batch 16 x 64 tokens ({machine()}, {threads}):")
    print_speed("float32", tokens_per_second(model, tokens, repeats))
    start_local_ray()
    print(f"documented vs uniform weights, final val/fidelity_mse after {epochs} epochs (lower is better):")
    rows = weights_comparison(seeds, epochs, scratch("npt"))
    wins = sum(r["documented"] < r["uniform"] for r in rows)
    mean_change = statistics.mean((r["documented"] - r["uniform"]) / r["uniform"] * 100 for r in rows)
    print(f"  documented better in {wins} of {len(rows)} seeds; mean change vs uniform {mean_change:+.2f}%")


if __name__ == "__main__":
    main()
