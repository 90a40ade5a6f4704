"""Synthetic default data per family, and readers for real files."""

from pathlib import Path

import numpy as np


class DataError(ValueError):
    """Bad data; the message starts with the file it concerns."""


def existing_file(path) -> Path:
    """`path` as a Path, or a DataError that says whether nothing is there or a folder is."""
    file = Path(path)
    if file.is_dir():
        raise DataError(f"{path}: a directory, where a file is expected")
    if not file.is_file():
        raise DataError(f"{path}: no such file")
    return file


def read_npz(path) -> dict:
    """Every array of a `.npz` file, read without unpickling anything; a DataError naming the file
    says what is wrong (never that it could be loaded unsafely)."""
    file = existing_file(path)
    try:
        with np.load(file, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except Exception as err:  # zip, format and pickle errors
        if str(err).startswith("Object arrays"):
            why = "it holds object arrays (pickled Python objects), which are never loaded; save plain arrays"
        else:
            why = f"corrupt, truncated or not an .npz archive ({type(err).__name__})"
        raise DataError(f"{file}: not a readable .npz file: {why}") from None


def hold_out(arrays: tuple, val_fraction: float, path: str, items: str) -> tuple:
    """(train arrays..., validation arrays...): the last `val_fraction` of each array held out,
    for data given as one file or folder (`data.path`) without a `data.val_path`."""
    count = len(arrays[0])
    cut = count - max(1, int(round(val_fraction * count)))
    if cut < 1:
        raise DataError(f"{path}: {count} {items} are too few to hold some out (data.val_fraction {val_fraction})")
    return (*(a[:cut] for a in arrays), *(a[cut:] for a in arrays))
