"""Local files a run's config names (its data, a checkpoint to start from, weights), carried from
the driver, which read and checked them, to every node through Ray's object store.

On a cluster a trial trains on whatever node has room, and a path on the head (where `ray job
submit` runs the sweep and --data was checked) is not on a GPU node. So the driver packs each such
file or folder once (`ship`), Ray's object store carries it to a node the first time a run there
asks for it (one copy per node, the way `tune.with_parameters` carries large objects), and the run
writes it once per node into a cache named by its content (`ShippedData.localised`), whose path
replaces the original in the run's config. A file removed or changed on the head after the check
changes nothing for the runs. Data larger than SHARE_OF_OBJECT_STORE of the smallest node's object
store is not shipped: it must be where every node reads it (shared storage), docs/cluster.md."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# The object store also holds the trials' checkpoints and results in flight; a shipment larger than
# this share of it would push those out to disk (spilling) or fail to fit.
SHARE_OF_OBJECT_STORE = 0.25


@dataclass(frozen=True)
class Packed:
    digest: str  # sha256 of the packed bytes: the node cache's name for it
    is_folder: bool
    ref: object  # the ObjectRef of the packed bytes


@dataclass(frozen=True)
class ShippedData:
    packed: dict = field(default_factory=dict)  # {absolute local path on the driver: Packed}
    too_large: tuple = ()  # paths left where they are (over the object store's share)

    def localised(self, overrides: dict) -> dict:
        """`overrides` with every shipped path replaced by this node's copy of it."""
        if not self.packed:
            return overrides
        # here, not at the top: loads ray only where this runs
        import ray

        local = {path: node_copy(path, item, lambda ref: ray.get(ref)) for path, item in self.packed.items()}
        return replaced(overrides, local)

    def summary(self) -> str:
        """One line for the commands' output: what goes to the nodes and how."""
        parts = [f"{path} ({'folder' if item.is_folder else 'file'}) through Ray's object store"
                 for path, item in self.packed.items()]
        parts += [f"{path} read where it is (over {SHARE_OF_OBJECT_STORE:.0%} of a node's object store: every node "
                  "must reach it)" for path in self.too_large]
        return "data to the nodes: " + "; ".join(parts) if parts else ""


def local_paths(overrides: dict) -> list[str]:
    """The absolute paths of existing local files and folders among a config's string values."""
    found = []
    for value in leaves(overrides):
        if isinstance(value, str) and os.path.isabs(value) and os.path.exists(value) and value != "/":
            found.append(value)
    return sorted(set(found))


def leaves(tree):
    if isinstance(tree, dict):
        for value in tree.values():
            yield from leaves(value)
    else:
        yield tree


def replaced(tree, local: dict):
    if isinstance(tree, dict):
        return {key: replaced(value, local) for key, value in tree.items()}
    return local.get(tree, tree) if isinstance(tree, str) else tree


def pack(path: str) -> bytes:
    """A file's bytes, or a folder as an uncompressed tar (its files, in name order)."""
    if not os.path.isdir(path):
        return Path(path).read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for root, folders, names in os.walk(path):
            folders.sort()
            for name in sorted(names):
                full = os.path.join(root, name)
                tar.add(full, arcname=os.path.relpath(full, path), recursive=False)
    return buffer.getvalue()


def size_on_disk(path: str) -> int:
    if not os.path.isdir(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def object_store_limit() -> float:
    # here, not at the top: loads ray only where this runs
    import ray

    stores = [node["Resources"].get("object_store_memory", 0.0) for node in ray.nodes() if node["Alive"]]
    return SHARE_OF_OBJECT_STORE * min((s for s in stores if s > 0), default=0.0)


def ship(overrides: dict, limit_bytes: float | None = None) -> ShippedData:
    """Every local file and folder the config names, put in Ray's object store once (this process
    owns them while the runs need them)."""
    # here, not at the top: loads ray only where this runs
    import ray

    paths = local_paths(overrides)
    if not paths:
        return ShippedData()
    limit = object_store_limit() if limit_bytes is None else limit_bytes
    packed, too_large, total = {}, [], 0
    for path in paths:
        if total + size_on_disk(path) > limit:  # measured before it is read: a model folder may be many GB
            too_large.append(path)
            continue
        data = pack(path)
        total += len(data)
        packed[path] = Packed(hashlib.sha256(data).hexdigest(), os.path.isdir(path), ray.put(data))
    return ShippedData(packed, tuple(too_large))


def cache_root() -> Path:
    """This node's copies: $LOSSTUNE_CACHE, else ~/.cache/losstune (as data.medgen's subjects)."""
    return Path(os.environ.get("LOSSTUNE_CACHE", Path.home() / ".cache" / "losstune")) / "shipped"


def node_copy(path: str, item: Packed, fetch) -> str:
    """This node's copy of a shipped path, written the first time a run on the node asks for it
    (`fetch(item.ref)` gives the bytes); the same name for the same content, whichever run wrote
    it. Written under a temporary name and renamed: runs starting at once on one node never read
    a half-written copy."""
    target = cache_root() / item.digest[:32] / os.path.basename(path.rstrip("/"))
    if target.exists():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".incoming-", dir=target.parent))
    try:
        data = fetch(item.ref)
        staged = scratch / target.name
        if item.is_folder:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
                tar.extractall(staged, filter="data")
        else:
            staged.write_bytes(data)
        try:
            os.rename(staged, target)
        except OSError:  # another run on this node wrote it first
            if not target.exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return str(target)
