"""python benchmarks/generation_cost.py [--samples 8] [--steps 2] [--epochs 4] [--set KEY=VALUE ...]

What judging a medgen_diffusion generator costs: the same run (bravo, the --smoke-test sizes, in
this process, no Ray) with and without generation.metrics, validating every epoch, in one run on
this machine. Prints the median epoch time of each, their ratio, and the generation evaluation's
own seconds (time/generation_s: sampling `--samples` images in `--steps` steps, their ResNet-50
and CLIP features, KID and CMMD against the training and validation images), the first
evaluation apart (it also computes the reference images' features, once per run) and the last
(it adds the FID). The extractors
are randomly initialised at the real ResNet-50's size and a tiny CLIP: their cost, not their
meaning, is measured.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from losstune.ray_jobs.cli.flags import parse_set
from losstune.trainables.registry import load_family
from losstune.trainables.config import merge
from losstune.trainables.engine.loop import train
from losstune.trainables.engine.session import LocalSession
import torch


def extractors(folder: Path) -> dict:
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.networks.nets import resnet50
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    state = resnet50(spatial_dims=2, n_input_channels=3, conv1_t_stride=2, num_classes=1000).state_dict()
    torch.save({k: v for k, v in state.items() if not k.endswith("downsample.0.bias")}, folder / "resnet50.pth")
    CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8,
        projection_dim=16)).save_pretrained(folder / "clip")
    return {"resnet_weights": str(folder / "resnet50.pth"), "clip_dir": str(folder / "clip")}


def epochs_of(config: dict) -> list[dict]:
    session = LocalSession()
    train(load_family("medgen_diffusion"), config, session)
    return session.reports


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args()
    family = load_family("medgen_diffusion")
    base = merge(merge(family.smoke, {"train": {"epochs": args.epochs, "val_every": 1, "checkpoint_every": 0}}),
                 parse_set(args.set))
    with tempfile.TemporaryDirectory() as folder:
        generation = {"metrics": True, "samples": args.samples, "kid_subset_size": max(2, args.samples // 2),
                      "num_steps": args.steps, **extractors(Path(folder))}
        plain = epochs_of(base)
        judged = epochs_of(merge(base, {"generation": generation}))
    middle = slice(1, -1)  # neither the first (reference features) nor the last (FID)
    plain_s = statistics.median(r["time/epoch_s"] for r in plain[middle])
    judged_s = statistics.median(r["time/epoch_s"] for r in judged[middle])
    first, later, last = (judged[0]["val/generation_s"], [r["val/generation_s"] for r in judged[middle]],
                          judged[-1]["val/generation_s"])
    print(f"medgen_diffusion bravo, smoke sizes ({base['data']['image_size']} px, batch {base['train']['batch_size']}), "
          f"{args.samples} samples x {args.steps} steps, ResNet-50 + tiny CLIP, validating every epoch:")
    print(f"  epoch time: {plain_s:.2f} s without generation metrics, {judged_s:.2f} s with "
          f"(ratio {judged_s / plain_s:.2f}, median of epochs 2-{args.epochs - 1})")
    print(f"  generation evaluation: {statistics.median(later):.2f} s (median of epochs 2-{args.epochs - 1}); "
          f"the first {first:.2f} s, with the reference features; the last {last:.2f} s, with the FID")


if __name__ == "__main__":
    main()
