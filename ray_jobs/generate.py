"""losstune-generate results/<sweep>/<trial>/checkpoint_000004 --n 8 --out generated/

Generate images from noise with a trained medgen_diffusion checkpoint (a sweep trial's, a
confirmation run's or losstune-train's), conditioned on the masks of its held-out subjects (bravo,
dual; seg mode is unconditioned; masks with a tumour first), and write each as NIfTI:
sample_0000_bravo.nii.gz (each image it generates) beside sample_0000_condition.nii.gz (the mask it
was conditioned on), in the world position, orientation and voxel size of that mask's validation
item (its scan's affine through the run's resize), and sample_0000_source.json (which subject and
axial slice, the affine, the voxel size, the tumour voxels). The
checkpoint's EMA weights are used where its run kept them (validation used them too). Runs in
this process on the GPU if there is one, else the CPU; Ray is not started.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from losstune.data import DataError
from losstune.ray_jobs.core.usage import UsageError
from losstune.ray_jobs.cli.flags import HelpFormatter, OneLineParser
from losstune.trainables.config import ConfigError, merge
from losstune.data.medgen_modes import MODE_CONDITIONING, MODE_IMAGES, SIZE_CONDITIONED
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family
import numpy as np

FAMILY = "medgen_diffusion"
MAX_SAMPLES = 100_000
BATCH = 8  # samples generated at once


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(prog="losstune-generate", description=__doc__, formatter_class=HelpFormatter,
                      epilog="exit status: 0 written; 2 bad input (not a medgen_diffusion checkpoint, an --out "
                             "folder that already holds samples), nothing written")
    p.add_argument("checkpoint", help="a checkpoint folder of a medgen_diffusion run (it holds losstune_state.json)")
    p.add_argument("--n", type=int, default=4, help="samples to generate")
    p.add_argument("--steps", type=int, help="sampling steps (default: the run's generation.num_steps, the seed's 25)")
    p.add_argument("--seed", type=int, help="the samples' noise (default: the run's generation.seed)")
    p.add_argument("--out", default="generated", help="folder for the NIfTI files (made; must hold no samples yet)")
    return p.parse_args(argv)


def checked_config(args):
    """The checkpoint's run config with --steps / --seed applied; UsageError / ConfigError naming the
    flag or file."""
    # here, not at the top: loads torch only where this runs
    from losstune.trainables.engine.checkpoints import STATE_FILE

    if not 1 <= args.n <= MAX_SAMPLES:
        raise UsageError(f"--n: must be 1 to {MAX_SAMPLES}, got {args.n}")
    state_file = os.path.join(args.checkpoint, STATE_FILE)
    if not os.path.isfile(state_file):
        raise UsageError(f"checkpoint: {args.checkpoint} holds no {STATE_FILE}: give a checkpoint folder of a run")
    try:
        with open(state_file) as f:
            state = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"checkpoint: {state_file} cannot be read ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise UsageError(f"checkpoint: {state_file} holds no run config: a damaged checkpoint")
    if state.get("family") != FAMILY:
        raise UsageError(f"checkpoint: {args.checkpoint} is of {state.get('family') or 'an unnamed family'}; "
                         f"only {FAMILY} generates images")
    if os.path.isdir(args.out) and any(name.startswith("sample_") for name in os.listdir(args.out)):
        raise UsageError(f"--out: {args.out} already holds samples; give an empty or new folder")
    given = {k: v for k, v in {"num_steps": args.steps, "seed": args.seed}.items() if v is not None}
    return make_config(load_family(FAMILY), merge(state["config"], {"generation": given}))


def trained_network(cfg, folder: str):
    """The checkpoint's network (its EMA average where the run kept one) and the validation draws
    whose masks condition the samples."""
    # here, not at the top: loads torch only where this runs
    import torch
    from safetensors.torch import load_file

    from losstune.trainables.families.medgen.diffusion import build
    from losstune.trainables.engine.optim_tricks import make_ema

    parts = build(cfg)
    model = parts.model
    model.load_state_dict(load_file(os.path.join(folder, "model.safetensors")))
    if cfg.optim.ema_decay:  # the loop registers the EMA first among its extra states (trainables/engine/loop.py)
        ema = make_ema(model, cfg.optim.ema_decay)
        ema.load_state_dict(torch.load(os.path.join(folder, "custom_checkpoint_0.pkl"), map_location="cpu"))
        model = ema.module
    return model.eval(), parts.val_set


def conditioning_order(draws) -> list[int]:
    """The validation items whose masks condition the samples, in turn: those with a tumour first
    (in order), then the tumour-free ones. In order alone, a small --n on real anatomy (90% of
    slices tumour-free) conditioned on empty masks only."""
    with_tumour = [k for k in range(len(draws.items)) if draws.items[k][2].gt(0.5).any()]
    return with_tumour + [k for k in range(len(draws.items)) if k not in set(with_tumour)]


def write_samples(samples, conditions, cfg, out: str, first: int, sources: list[dict] = ()) -> list[str]:
    """One NIfTI file per generated image and per conditioning mask (2D slices as one-slice volumes),
    in its validation item's world place (its affine), and a JSON of where its mask came from; in the
    seg_conditioned modes the size bins each mask was generated for, as JSON (tumours per bin, or
    whether there is one); in multi the image named by its modality."""
    # here, not at the top: loads torch, scipy, nibabel only where this runs
    import nibabel

    from losstune.losses.tumour_size import CONDITIONING_EDGES_MM

    mode, written = cfg.data.mode, []
    for k, (sample, condition) in enumerate(zip(samples, conditions)):
        names = MODE_IMAGES[mode]
        if mode == "multi":  # one image, its modality one-hot after the mask
            names = (names[int(condition[1:].flatten(1).mean(1).argmax())],)
        arrays = {name: sample[c] for c, name in enumerate(names)}
        if MODE_CONDITIONING[mode]:
            arrays["condition"] = condition[0]
        if mode in SIZE_CONDITIONED:
            path = os.path.join(out, f"sample_{first + k:04d}_size_bins.json")
            with open(path, "w") as f:
                json.dump({"edges_mm": list(CONDITIONING_EDGES_MM), SIZE_CONDITIONED[mode]:
                           condition.flatten(1).mean(1).tolist()}, f)
            written.append(path)
        # without a source (seg mode, unconditioned) the array's axes at 1 mm
        affine = np.asarray(sources[k]["affine"]) if sources else np.eye(4)
        for name, array in arrays.items():
            volume = array.cpu().numpy().astype(np.float32)
            path = os.path.join(out, f"sample_{first + k:04d}_{name}.nii.gz")
            image = volume[..., None] if volume.ndim == 2 else volume
            nibabel.save(nibabel.Nifti1Image(image, affine), path)
            written.append(path)
        if sources:
            path = os.path.join(out, f"sample_{first + k:04d}_source.json")
            with open(path, "w") as f:
                json.dump(sources[k], f, indent=2)
            written.append(path)
    return written


def run(args, cfg) -> list[str]:
    # here, not at the top: loads torch only where this runs
    import torch

    from losstune.trainables.families.medgen.generation import generate

    model, draws = trained_network(cfg, args.checkpoint)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    image = draws.items[0][0]
    sample_shape = tuple(draws.noise_shape or image.shape)
    os.makedirs(args.out, exist_ok=True)
    written, order = [], conditioning_order(draws)
    for first in range(0, args.n, BATCH):
        picked = [order[(first + k) % len(order)] for k in range(min(BATCH, args.n - first))]
        conditions = torch.stack([draws.items[index][1] for index in picked])
        sources = [{"validation_item": index, **draws.items.source(index),
                    "voxel_mm": [float(v) for v in draws.items.spacings[index]],
                    "tumour_voxels": int(draws.items[index][2].gt(0.5).sum())} for index in picked]
        samples = generate(model, cfg, conditions, sample_shape, seed=cfg.generation.seed + first)
        written += write_samples(samples, conditions, cfg, args.out, first, sources)
    return written


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = checked_config(args)
    except (ConfigError, DataError, UsageError) as err:
        print(f"generate: error: {err}", file=sys.stderr)
        return 2
    started = time.time()
    written = run(args, cfg)
    print(f"generate: {args.n} samples ({cfg.strategy.name}, {cfg.generation.num_steps} steps, "
          f"{cfg.data.mode} mode) in {time.time() - started:.1f} s: {len(written)} NIfTI files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
