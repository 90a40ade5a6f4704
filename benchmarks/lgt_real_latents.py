"""python benchmarks/lgt_real_latents.py [--epochs 12] [--set KEY=VALUE ...] [--quick]

Whether lgt's identity-mapping and velocity-collapse stops (seed 002's failure modes) leave a
healthy run on real data alone while it starts slowly. No pretrained VAE can be loaded here, so the
"latents" come from real images by a fixed, invertible 2x2 space-to-depth (64x64 grey crops ->
4x32x32, standardised per source), one style per source: two photographs and two elevation rasters
that matplotlib ships (mpl-data/sample_data). They are not Stable Diffusion latents, but their
statistics are real images', not the synthetic generator's.

The run trains the default config (with `--set` overrides) with the stops deferred past its last
epoch and prints, per
epoch, the identity ratio (val SWD of the output to the target style over the source's), the
velocity norm and both objectives, then the first epoch at which each grace setting would have
stopped it.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import common

SOURCES = (  # (file in matplotlib's sample_data, array key or None for an image)
    ("grace_hopper.jpg", None), ("Minduka_Present_Blue_Pack.png", None),
    ("topobathy.npz", "topo"), ("jacksboro_fault_dem.npz", "elevation"))
CROP = 64


def source_image(name: str, key: str | None) -> np.ndarray:
    """A real grey image, float64 [H, W]."""
    # here, not at the top: loads matplotlib only where this runs
    import matplotlib
    from PIL import Image

    path = os.path.join(matplotlib.get_data_path(), "sample_data", name)
    if key is None:
        return np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    with np.load(path) as archive:
        return archive[key].astype(np.float64)


def real_image_latents(per_style: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(latents [N, 4, 32, 32] float32, style_ids [N]): random 64x64 crops of each source, each
    source standardised to mean 0 and std 1, 2x2 pixels folded into 4 channels."""
    rng = np.random.default_rng(seed)
    latents, ids = [], []
    for style, (name, key) in enumerate(SOURCES):
        image = source_image(name, key)
        image = (image - image.mean()) / image.std()
        for _ in range(per_style):
            y, x = rng.integers(0, image.shape[0] - CROP + 1), rng.integers(0, image.shape[1] - CROP + 1)
            crop = image[y:y + CROP, x:x + CROP]
            latents.append(crop.reshape(CROP // 2, 2, CROP // 2, 2).transpose(1, 3, 0, 2).reshape(4, CROP // 2, CROP // 2))
            ids.append(style)
    order = rng.permutation(len(ids))  # the reader holds out the last 20% of each style
    return np.stack(latents)[order].astype(np.float32), np.array(ids)[order]


def first_stop(reports: list[dict], grace: int, max_ratio: float, min_velocity: float) -> str:
    for report in reports:
        if report["epoch"] > grace:
            if report["health/identity_ratio"] > max_ratio:
                return f"identity_mapping at epoch {report['epoch']}"
            if report["health/velocity_norm"] < min_velocity:
                return f"velocity_collapse at epoch {report['epoch']}"
    return "never"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--per-style", type=int, default=120)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    parser.add_argument("--quick", action="store_true", help="4 epochs of 60 latents per style")
    args = parser.parse_args()
    epochs, per_style = (4, 60) if args.quick else (args.epochs, args.per_style)

    from losstune.ray_jobs.cli.flags import parse_set
    from losstune.trainables.config import merge
    from losstune.trainables.families.lgt_config import HealthConfig

    storage = common.scratch("lgt_real")
    path = os.path.join(storage, "real_latents.npz")
    latents, ids = real_image_latents(per_style)
    np.savez(path, latents=latents, style_ids=ids)
    print(f"{common.machine()}; {len(ids)} latents {list(latents.shape[1:])} from {len(SOURCES)} real sources; "
          f"overrides {args.set or 'none'}")
    common.start_local_ray()
    overrides = merge(parse_set(args.set), {"data": {"path": path, "num_styles": len(SOURCES)},
                                            "train": {"epochs": epochs}, "health": {"grace_epochs": epochs}})
    reports = common.platform_run("lgt", overrides, storage, "real_latents")
    print("epoch  identity_ratio  velocity_norm  style_swd  content_ssm")
    for r in reports:
        print(f"{r['epoch']:5d}  {r['health/identity_ratio']:14.4f}  {r['health/velocity_norm']:13.4g}  "
              f"{r['val/style_swd']:9.4f}  {r['val/content_ssm']:11.4f}")
    health = HealthConfig()
    for grace in sorted({health.grace_epochs, 3, 5}):
        print(f"stops with grace {grace} (ratio > {health.max_identity_ratio}, velocity < "
              f"{health.min_velocity_norm}): {first_stop(reports, grace, health.max_identity_ratio, health.min_velocity_norm)}")


if __name__ == "__main__":
    main()
