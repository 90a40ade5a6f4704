"""Where a sweep's files go: local paths or pyarrow filesystem URIs (s3://, gs://), read and written
the same way."""

from __future__ import annotations

import io
import json
import os

import pyarrow.fs


class SweepFolderError(ValueError):
    """A sweep folder that cannot be read as one; the message names the folder or file."""


def absolute(uri: str) -> str:
    """A URI as given, without a trailing "/"; a plain local path made absolute (Ray's workers run
    in other folders)."""
    if "://" not in uri:
        return os.path.abspath(uri)
    base, query = split_query(uri)
    base = base.rstrip("/") if not base.endswith("://") else base
    return f"{base}?{query}" if query else base


def parent_and_name(uri: str) -> tuple[str, str]:
    """(the folder that holds `uri`, its last name), the query kept with the folder."""
    base, query = split_query(absolute(uri))
    parent, name = base.rsplit("/", 1)
    return (f"{parent}?{query}" if query else parent), name


def join(uri: str, *names: str) -> str:
    """`names` appended to the path of `uri`, its query kept at the end: pyarrow (and so Ray) take an
    S3-compatible store's options as one (`s3://bucket/runs?endpoint_override=host:port&scheme=http`),
    and a name written after the query would be read as part of an option."""
    base, query = split_query(uri)
    path = "/".join([base.rstrip("/"), *(name.strip("/") for name in names if name)])
    return f"{path}?{query}" if query else path


def split_query(uri: str) -> tuple[str, str]:
    """(the URI without its query, the query); a local path has none."""
    if "://" not in uri or "?" not in uri:
        return uri, ""
    base, query = uri.split("?", 1)
    return base, query


def uri_of(path: str, store: str) -> str:
    """A path Ray reports inside a store's filesystem (a checkpoint's: no scheme, no options) as a
    URI of that store, which pyarrow, Ray and this module read back as it is."""
    if "://" in path or "://" not in store:
        return path
    base, query = split_query(store)
    uri = f"{base.split('://')[0]}://{path.lstrip('/')}"
    return f"{uri}?{query}" if query else uri


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


def read_bytes_of(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def read_checked(uri: str, read, what: str):
    """read(uri); a missing or damaged file is a SweepFolderError naming it, in one line."""
    try:
        return read(uri)
    except (pyarrow.ArrowException, OSError, ValueError) as err:  # UnicodeDecodeError is a ValueError
        why = (str(err).splitlines() or [type(err).__name__])[0]
        raise SweepFolderError(f"{uri}: not a readable {what} ({type(err).__name__}: {why})") from None


def listing(folder: str) -> list:
    """The entries of a folder (local or an object store's), by name; none where it does not exist."""
    fs, inside = filesystem(folder)
    return sorted(fs.get_file_info(pyarrow.fs.FileSelector(inside, allow_not_found=True)),
                  key=lambda info: info.base_name)


def read_json(uri: str) -> dict:
    return json.loads(read_bytes_of(uri).decode())


def as_json(value):
    """`value` as it reads back from JSON (tuples as lists), to compare with a saved one."""
    return json.loads(json.dumps(value, default=str))


def read_parquet(uri: str):
    """A Parquet file as a pandas DataFrame."""
    # here, not at the top: loads pyarrow only where this runs
    import pyarrow.parquet

    fs, path = filesystem(uri)
    return pyarrow.parquet.read_table(path, filesystem=fs).to_pandas()


def write_parquet(uri: str, frame) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    write_bytes(uri, buffer.getvalue())
