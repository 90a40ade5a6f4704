"""Where a sweep's files go: local paths or pyarrow filesystem URIs (s3://, gs://), read and written
the same way."""

from __future__ import annotations

import io
import json
import os

import pyarrow.fs


def absolute(uri: str) -> str:
    """A URI as given; a plain local path made absolute (Ray's workers run in other folders)."""
    return uri if "://" in uri else os.path.abspath(uri)


def filesystem(uri: str):
    """(pyarrow filesystem, path inside it)."""
    return pyarrow.fs.FileSystem.from_uri(absolute(uri))


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def write_bytes(uri: str, data: bytes) -> None:
    fs, path = filesystem(uri)
    fs.create_dir(os.path.dirname(path), recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(data)


def check_writable(uri: str) -> None:
    """Write and remove a probe file in `uri` (created if missing: only its last folder, so that a
    path under an unmounted disk is not quietly made on the local one). OSError on failure."""
    fs, path = filesystem(uri)
    if "://" not in uri:
        parent = os.path.dirname(path.rstrip("/")) or "/"
        if os.path.exists(parent) and not os.path.isdir(parent):
            raise OSError(f"{parent} is a file, not a folder")
        if not os.path.isdir(parent):
            raise OSError(f"{parent} does not exist (a disk or share not mounted?); create it first")
    fs.create_dir(path, recursive=True)
    probe = f"{path}/.losstune_write_probe_{os.getpid()}"
    with fs.open_output_stream(probe) as out:
        out.write(b"probe")
    fs.delete_file(probe)


def read_json(uri: str) -> dict:
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as f:
        return json.loads(f.read().decode())


def read_parquet(uri: str):
    """A Parquet file as a pandas DataFrame."""
    import pyarrow.parquet

    fs, path = filesystem(uri)
    return pyarrow.parquet.read_table(path, filesystem=fs).to_pandas()


def write_parquet(uri: str, frame) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    write_bytes(uri, buffer.getvalue())
