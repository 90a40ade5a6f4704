"""python benchmarks/transformer_memory.py [--kinds dit hdit uvit] [--quick]

Training memory of medgen_diffusion's transformer denoisers (models/medgen_transformers.py) per
variant, patch size and volume, the seed's "Memory is O(n^2) in tokens" and its VRAM profiling as
figures a CPU can give (seed 001 "DiT", "HDiT": misc/profile_dit_memory.py needs a GPU):
  - measured: the bytes autograd saves for the backward pass (saved_tensors_hooks, each storage
    once, the parameters left out) in one forward of batch 1 in float32 on this CPU, at two small
    3D volumes per variant and patch, and the model's state (weights, gradients, AdamW's two
    moments: 16 bytes a parameter);
  - extrapolated: saved(n) = c + a n through the two measured token counts n, at the seed's
    volumes (128x128x160, 256x256x160) and batch 1: torch's attention on a CPU is a fused kernel
    that, like flash attention on a GPU, keeps no n x n matrix, and the measured bytes grow as n
    (8x the tokens, 7.9x the bytes). The seed's "Memory is O(n^2) in tokens" is the unfused
    attention's, printed beside it: depth x heads x n^2 x 4 bytes of attention probabilities kept
    for the backward pass (HDiT: per level at its own n). Under bf16 autocast activations are
    about half.
The table goes to benchmarks/history.md; a GPU's figures (torch.cuda.max_memory_allocated) come
from benchmarks/gpu.py when one is lent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine  # noqa: E402
from losstune.trainables.families.medgen.denoiser_config import VARIANTS

SEED_VOLUMES = [(128, 128, 160), (256, 256, 160)]
PATCHES = {"dit": (2, 4, 8), "hdit": (4,), "uvit": (8,)}  # seed: DiT "1, 2, 4, or 8"; HDiT 4; UViT 8
STATE_BYTES = 16  # float32 weight, gradient and AdamW's two moments


def saved_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """What autograd keeps from one forward for the backward, parameters excepted."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            seen[storage.data_ptr()] = storage.nbytes()
        # not the tensor itself: a saved output that holds its own grad_fn is a reference cycle
        # through autograd that Python's collector cannot see, and every model measured would stay
        return tensor.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x, torch.tensor([500])).sum()
    return sum(seen.values())


def measured_sides(kind: str, patch: int) -> list[tuple[int, ...]]:
    """Two small volumes whose token grids HDiT's two merges can halve (4 and 8 a side), cubes."""
    return [(patch * grid,) * 3 for grid in (4, 8)]


def fit(points: list[tuple[int, int]]) -> tuple[float, float]:
    """(c, a) of c + a n through two (n, bytes) points."""
    (n1, y1), (n2, y2) = points
    a = (y2 - y1) / (n2 - n1)
    return y1 - a * n1, a


def unfused_attention_bytes(kind: str, n: int, depth: int, heads: int) -> float:
    """The attention probabilities an unfused attention keeps, float32: n^2 per head and block;
    HDiT's levels (2, 4, 6, 4, 2) at n, n / 8 and n / 64 tokens."""
    if kind == "hdit":
        return sum(blocks * heads * (n / 8 ** level) ** 2 * 4 for level, blocks in enumerate((4, 8, 6)))
    return depth * heads * n * n * 4


def tokens(sides, patch) -> int:
    count = 1
    for side in sides:
        count *= side // patch
    return count


def main() -> None:
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from losstune.models.medgen_transformers import parameter_count
    from losstune.trainables.families.medgen.denoisers import transformer

    p = argparse.ArgumentParser()
    p.add_argument("--kinds", nargs="+", default=["dit", "hdit", "uvit"], choices=["dit", "hdit", "uvit"])
    p.add_argument("--quick", action="store_true", help="the S variant of each kind only")
    args = p.parse_args()
    torch.set_grad_enabled(True)
    print(f"training memory, batch 1, float32, bravo (2 channels in, 1 out), 3D ({machine()}):")
    head = " | ".join(f"{'x'.join(map(str, v))}: n, fused (unfused)" for v in SEED_VOLUMES)
    print(f"| kind | variant | patch | parameters | state (GB) | saved at n=64, 512 (MB) | {head} |")
    print("|---|---|---|---|---|---|" + "---|" * len(SEED_VOLUMES))
    for kind in args.kinds:
        for variant, (width, depth, heads) in VARIANTS[kind].items():
            if args.quick and variant != "S":
                continue
            for patch in PATCHES[kind]:
                row(kind, variant, patch, width, depth, heads, transformer, parameter_count)


class Model:  # the `model` section transformer() reads
    def __init__(self, kind, patch):
        self.kind, self.spatial_dims, self.patch, self.qk_norm, self.uvit_qk_norm = kind, 3, patch, True, False
        self.level_depths = (2, 4, 6, 4, 2)


def row(kind, variant, patch, width, depth, heads, transformer, parameter_count) -> None:
    started, points, count = time.time(), [], 0
    for sides in measured_sides(kind, patch):
        torch.manual_seed(0)
        model = transformer(Model(kind, patch), 2, 1, sides, 0, width, depth, heads)
        count = parameter_count(model)
        points.append((tokens(sides, patch), saved_bytes(model, torch.randn(1, 2, *sides))))
        del model
    c, a = fit(points)
    state = STATE_BYTES * count / 1e9
    cells = []
    for volume in SEED_VOLUMES:
        n = tokens(volume, patch)
        fused = state + (c + a * n) / 1e9
        cells.append(f"{n:,}: {fused:.1f} GB ({fused + unfused_attention_bytes(kind, n, depth, heads) / 1e9:,.0f} GB)")
    saved = ", ".join(f"{y / 1e6:.0f}" for _, y in points)
    print(f"| {kind} | {variant} | {patch} | {count / 1e6:.1f}M | {state:.1f} | {saved} | {' | '.join(cells)} |"
          f"  <!-- {time.time() - started:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
