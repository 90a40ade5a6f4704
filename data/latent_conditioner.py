"""latent_conditioner data: synthetic outline images with learnable latent targets, a reader for a
directory of PNGs plus `latents.npz`, and the seed's augmentations, batched on the device.

Images are float32 in [0, 1], [N, 1, S, S]. Targets: y1 [N, 32] (main latent) and y2
[N, 8 * size2] (hierarchical latent), in (-1, 1) like the model's Tanh heads.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch

from losstune.data import DataError, read_npz

TARGET_SEED = 20240  # the target function is fixed: the same for train, validation, every run


def synthetic_images(num: int, size: int = 256, seed: int = 0) -> np.ndarray:
    """`num` images of 1-4 shapes (ellipses and rectangles, outlined or filled) on black."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    images = np.zeros((num, 1, size, size), np.float32)
    for i in range(num):
        for _ in range(rng.integers(1, 5)):
            cy, cx = rng.uniform(-0.6, 0.6, 2)
            ry, rx = rng.uniform(0.1, 0.45, 2)
            if rng.random() < 0.5:
                dist = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)  # ellipse: 1 on the outline
            else:
                dist = np.maximum(np.abs(yy - cy) / ry, np.abs(xx - cx) / rx)  # rectangle
            thickness = rng.uniform(0.03, 0.12)
            shape = np.abs(dist - 1) < thickness if rng.random() < 0.7 else dist < 1
            images[i, 0] = np.maximum(images[i, 0], shape * rng.uniform(0.4, 1.0))
    return images


def image_features(images: np.ndarray) -> np.ndarray:
    """Eight statistics of each image that flips, +-5 degree rotations and 1-pixel shifts barely
    change (the seed's augmentations are "outline-preserving"): brightness, contrast, coverage,
    edge density, and where the mass lies relative to the centre."""
    x = images[:, 0].astype(np.float64)
    size = x.shape[-1]
    yy, xx = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    radius = np.sqrt(yy**2 + xx**2)
    mass = x.sum(axis=(1, 2)) + 1e-6
    gy, gx = np.gradient(x, axis=(1, 2))
    edges = np.sqrt(gy**2 + gx**2) * size / 2
    return np.stack([
        x.mean(axis=(1, 2)), x.std(axis=(1, 2)), (x > 0.5).mean(axis=(1, 2)), (x > 0.05).mean(axis=(1, 2)),
        edges.mean(axis=(1, 2)), (x * radius).sum(axis=(1, 2)) / mass,
        (x * radius**2).sum(axis=(1, 2)) / mass, (x * (radius < 0.5)).sum(axis=(1, 2)) / mass,
    ], axis=1)


def latent_targets(images: np.ndarray, main_dim: int = 32, hier_dim: int = 32):
    """(y1, y2): fixed smooth functions of `image_features`: standardised features through fixed
    random linear maps and tanh, so the task is learnable and a better loss can show."""
    rng = np.random.default_rng(TARGET_SEED)
    mean, std = _reference_statistics(images.shape[-1])
    z = (image_features(images) - mean) / std
    w1 = rng.normal(size=(z.shape[1], main_dim)) / math.sqrt(z.shape[1])
    w2 = rng.normal(size=(z.shape[1], hier_dim)) / math.sqrt(z.shape[1])
    main = np.tanh(0.7 * z @ w1)
    return main.astype(np.float32), np.tanh(0.5 * z @ w2 + 0.3 * main[:, :1]).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _reference_statistics(size: int):
    """Mean and std of the features over a fixed reference set: built once per image size."""
    reference = image_features(synthetic_images(64, size, seed=TARGET_SEED))
    return reference.mean(0), reference.std(0) + 1e-6


def synthetic_set(num: int, size: int, seed: int, main_dim: int, hier_dim: int):
    images = synthetic_images(num, size, seed)
    return (images, *latent_targets(images, main_dim, hier_dim))


def load_directory(path: str | Path, size: int, main_dim: int, hier_dim: int):
    """A directory of grayscale PNGs and `latents.npz` (names, y1, y2) -> (images, y1, y2), in the
    order of `names`. Every failure is a DataError naming the file."""
    folder = Path(path)
    latents = folder / "latents.npz"
    if not folder.is_dir():
        raise DataError(f"{folder}: no such directory")
    if not latents.is_file():
        raise DataError(f"{latents}: missing (it holds names, y1, y2 for the images)")
    z = read_npz(latents)
    missing = {"names", "y1", "y2"} - set(z)
    if missing:
        raise DataError(f"{latents}: missing arrays {sorted(missing)}")
    names, y1, y2 = [file_name(n) for n in z["names"]], z["y1"].astype(np.float32), z["y2"].astype(np.float32)
    y2 = y2.reshape(len(y2), -1)
    for label, y, dim in (("y1", y1, main_dim), ("y2", y2, hier_dim)):
        if y.shape != (len(names), dim):
            raise DataError(f"{latents}: {label} has shape {tuple(y.shape)}, expected ({len(names)}, {dim})")
        check_latent_values(latents, label, y)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # one image would count twice, and could land in training and validation both
        raise DataError(f"{latents}: names lists {repeated[0]!r} more than once ({len(repeated)} repeated names)")
    # hidden files are none of the images (macOS writes ._name.png beside each file it copies)
    pngs = sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))
    if not pngs:
        raise DataError(f"{folder}: no .png images")
    unlabelled = sorted(set(pngs) - set(names))
    if unlabelled:
        raise DataError(f"{folder / unlabelled[0]}: no latents for it in {latents}")
    images = np.empty((len(names), 1, size, size), np.float32)
    for i, name in enumerate(names):
        images[i, 0] = _read_png(folder / name, size)
    return images, y1, y2


def file_name(name) -> str:
    """A name from latents.npz as the file name in the folder: str, or bytes (names saved as a
    bytes array, as h5py and np.char.encode give them: str() would make b'img.png' of them), and
    without any folder before it (names are often saved as the paths they were globbed as, on
    Windows with backslashes); a name without a suffix is its .png. Two paths to one file name
    are then refused as a repeated name."""
    text = name.decode() if isinstance(name, bytes) else str(name)
    base = text.replace("\\", "/").rsplit("/", 1)[-1]
    return base if Path(base).suffix else f"{base}.png"  # a stem ("img_001") names its PNG


def check_latent_values(file: Path, label: str, y: np.ndarray) -> None:
    """Targets the model can fit: finite, and in [-1, 1], the range of its Tanh heads."""
    bad = ~np.isfinite(y)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataError(f"{file}: {label} holds {int(bad.sum())} non-finite values (first in row {row})")
    outside = np.abs(y) > 1.0
    if outside.any():
        raise DataError(f"{file}: {label} holds {int(outside.sum())} values outside [-1, 1] (min {y.min():.4g}, "
                        f"max {y.max():.4g}), which the model's Tanh heads cannot reach; scale the latents into it")


GREY_MODES = ("L", "I;16", "I")
# modes that can hold a greyscale picture in other clothes (an outline exported as RGB or RGBA,
# a 1-bit mask, a grey palette): read when every pixel is grey and opaque, refused otherwise
GREY_IN_CONTENT = ("1", "P", "PA", "LA", "RGB", "RGBA")
MODE_NAMES = {"P": "a palette (indexed colour) image", "PA": "a palette image with alpha", "RGB": "an RGB image",
              "RGBA": "an RGBA image", "LA": "a greyscale image with alpha", "1": "a 1-bit image",
              "CMYK": "a CMYK image"}
EXPECTED = "expected an 8- or 16-bit greyscale PNG (mode L or I;16), e.g. converted with PIL's .convert('L')"


def _read_png(path: Path, size: int) -> np.ndarray:
    # here, not at the top: loads PIL only where this runs
    from PIL import Image

    if not path.is_file():
        raise DataError(f"{path}: listed in latents.npz but missing")
    with Image.open(path) as image:
        kind = MODE_NAMES.get(image.mode, f"a {len(image.getbands())}-channel image")
        if image.mode not in GREY_MODES + GREY_IN_CONTENT:
            raise DataError(f"{path}: {kind} (PIL mode {image.mode}); {EXPECTED}")
        if image.size != (size, size):
            raise DataError(f"{path}: {image.size[0]}x{image.size[1]} pixels, expected {size}x{size} (data.image_size)")
        if image.mode in GREY_MODES:
            return np.asarray(image, dtype=np.float32) / (255.0 if image.mode == "L" else 65535.0)
        return grey_of(path, kind, np.asarray(image.convert("RGBA")))


def grey_of(path: Path, kind: str, rgba: np.ndarray) -> np.ndarray:
    """The grey of an 8-bit RGBA picture in [0, 1], exactly, when it is one: every pixel opaque
    and R = G = B. Transparency or colour would need a choice (a background, a luminance formula)
    that is the user's to make, so those are refused with how many pixels are off."""
    transparent = int((rgba[..., 3] < 255).sum())
    if transparent:
        raise DataError(f"{path}: {kind} with {transparent} transparent pixels; {EXPECTED}")
    coloured = int(((rgba[..., 0] != rgba[..., 1]) | (rgba[..., 1] != rgba[..., 2])).sum())
    if coloured:
        raise DataError(f"{path}: {kind} in colour ({coloured} of {rgba[..., 0].size} pixels not grey); {EXPECTED}")
    return rgba[..., 0].astype(np.float32) / 255.0


# --- augmentations (seed "Augmentation Strategy"), batched on the device --------------------------

def outline_preserving(x: torch.Tensor, flip_p: float, max_shift_px: int, max_degrees: float,
                       scale_range: tuple[float, float]) -> torch.Tensor:
    """Per sample: horizontal flip with probability `flip_p`, then one affine of a rotation in
    +-max_degrees, a scale in scale_range and an integer shift in +-max_shift_px, resampled by
    MONAI's batched AffineTransform."""
    # here, not at the top: loads torch, optuna, monai and more only where this runs
    from monai.networks.layers import AffineTransform

    n, device = x.shape[0], x.device
    flip = torch.rand(n, device=device) < flip_p
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    angle = torch.deg2rad((torch.rand(n, device=device) * 2 - 1) * max_degrees)
    scale = torch.empty(n, device=device).uniform_(*scale_range)
    shift = torch.randint(-max_shift_px, max_shift_px + 1, (n, 2), device=device).float() * 2 / x.shape[-1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale  # grid coords: the inverse map
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    return AffineTransform(normalized=True, padding_mode="zeros")(x, theta.to(x.dtype))


def mixup(x, y1, y2, alpha: float):
    """Seed mixup: one Beta(alpha, alpha) weight for the batch, mixing inputs and both targets."""
    lam = torch.distributions.Beta(alpha, alpha).sample().to(x.device)
    index = torch.randperm(x.shape[0], device=x.device)
    return tuple(lam * t + (1 - lam) * t[index] for t in (x, y1, y2))
