"""Synthetic default data per family, and readers for real files."""

from pathlib import Path


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
