"""Checks of the command line that need more than a flag's own range, all before Ray starts: sane
upper bounds, names that make one folder, the storage's free-space floor, RAY_ADDRESS, a local Ray's
cores and GPUs, and files that are regular files. Each raises UsageError naming the flag."""

from __future__ import annotations

import os
import shutil
import socket
import stat

from losstune.ray_jobs.core.usage import UsageError, finite_float

MAX_SEED = 2**32 - 1  # numpy's and Optuna's samplers take seeds below 2^32
MAX_TRIALS = 100_000  # a week of one-second trials; more is a typo
MAX_EPOCHS = 1_000_000
MAX_NAME = 200  # characters: a folder name with room for Tune's own suffixes under the 255-byte limit
ADDRESS_TIMEOUT_S = 5.0


def check_upper_bounds(*checks: tuple[str, float | None, float]) -> None:
    """Each (flag, value, high): a given value must be <= high."""
    for flag, value, high in checks:
        if value is not None and value > high:
            raise UsageError(f"{flag}: must be <= {high:,}, got {value:,}")


def check_folder_name(flag: str, name: str | None) -> None:
    """A name that becomes a folder: no control characters (a newline made a folder no shell
    lists cleanly), and short enough for the file system."""
    if name is None:
        return
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise UsageError(f"{flag}: must not hold control characters (a newline, a tab), got {name!r}")
    if len(name.encode()) > MAX_NAME:
        raise UsageError(f"{flag}: {len(name.encode())} bytes long; at most {MAX_NAME}")


STORES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")  # the URI schemes pyarrow.fs opens


def check_storage_text(storage: str) -> None:
    """--storage as written: a local folder, or a URI of a store pyarrow opens, with a bucket."""
    if not storage.strip():
        raise UsageError("--storage: is empty; give a folder (default ./results) or a URI")
    if "://" not in storage:
        return
    scheme, rest = storage.split("://", 1)
    if scheme not in STORES:
        raise UsageError(f"--storage: {storage!r}: no store for '{scheme}://' (a local folder, or "
                         f"{', '.join(s + '://' for s in STORES[:4])} ...)")
    if scheme != "file" and not rest.split("?", 1)[0].split("/", 1)[0]:
        raise UsageError(f"--storage: {storage!r} names no bucket, e.g. {scheme}://my-bucket/losstune")


def check_min_free(min_free_mb: float, storage: str, given: bool = True) -> None:
    """--min-free-mb: not negative (that silently turned the disk guard off), and, where given, not
    above the local disk's size (the sweep then ran, and stopped as 'storage full' at its first
    check; the default on a small disk is the storage check's to judge)."""
    if min_free_mb < 0:
        raise UsageError(f"--min-free-mb: must be >= 0, got {min_free_mb:g}")
    if "://" in storage or not given:
        return
    existing = os.path.abspath(storage)
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    total_mb = shutil.disk_usage(existing).total / 2**20
    if min_free_mb > total_mb:
        raise UsageError(f"--min-free-mb: {min_free_mb:g} MB is more than the disk of {storage} holds "
                         f"({total_mb:,.0f} MB)")


def check_ray_address() -> None:
    """RAY_ADDRESS, where set: auto, host:port or ray://host:port, and something answering there
    (an address nobody answers made ray.init retry for minutes)."""
    check_ray_tmpdir()
    raw = os.environ.get("RAY_ADDRESS")
    address = (raw or "").strip()
    if raw is not None and not address:  # Ray read '  ' as an address and retried 3 times (exit 4)
        raise UsageError(f"RAY_ADDRESS: set but blank ({raw!r}); unset it for a local Ray, or give host:port")
    if not address or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, _, port = hostport.rstrip("/").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"RAY_ADDRESS: {address!r} is not host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=ADDRESS_TIMEOUT_S).close()
    except OSError as err:
        raise UsageError(f"RAY_ADDRESS: nothing answers at {host}:{port} ({err.strerror or err}); start the "
                         "cluster, or unset RAY_ADDRESS for a local Ray") from None


def check_ray_tmpdir() -> None:
    """RAY_TMPDIR, where set, a folder (or one that can be made): a file there made Ray fail to start
    three times over and blame the machine's load."""
    path = os.environ.get("RAY_TMPDIR")
    if path is None:
        return
    if not path.strip():
        raise UsageError(f"RAY_TMPDIR: set but blank ({path!r}); unset it, or name a folder")
    existing = os.path.abspath(path)
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"RAY_TMPDIR: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"RAY_TMPDIR: {existing} cannot be written")


def check_local_resources(resources) -> None:
    """On a local Ray (no RAY_ADDRESS) the cores and GPUs are known before it starts: a trial that
    cannot fit is refused here, naming the flag that asks too much."""
    if os.environ.get("RAY_ADDRESS"):
        return  # a cluster's nodes are known once joined (cluster.fit_to_cluster)
    # here, not at the top: loads torch only where this runs
    import torch

    cpus, gpus = os.cpu_count() or 1, torch.cuda.device_count()
    if resources.gpus_per_worker > gpus:
        raise UsageError(f"--gpus-per-worker: {resources.gpus_per_worker:g} GPU per worker, this machine has {gpus}")
    if resources.cpus_per_worker > cpus:
        raise UsageError(f"--cpus-per-worker: {resources.cpus_per_worker:g} CPUs per worker, this machine has {cpus}")
    if resources.driver_cpus > cpus:
        raise UsageError(f"--driver-cpus: {resources.driver_cpus:g} CPUs per trial's driver, this machine has {cpus}")
    for kind, have in (("CPU", cpus), ("GPU", gpus)):
        need = resources.per_trial().get(kind, 0.0)
        if need > have + 1e-9:
            raise UsageError(f"--workers-per-trial: {resources.workers} workers and the driver need {need:g} {kind} "
                             f"for one trial, this machine has {have}")


def add_resource_flags(p, run: str) -> None:
    """What each `run` (a sweep's trial, a comparison's run) holds and how it trains."""
    p.add_argument("--workers-per-trial", type=int, default=1, help=f"training workers (DDP ranks) per {run}")
    p.add_argument("--cpus-per-worker", type=finite_float,
                   help=f"default 1; in a worker group on a local Ray 1 - --driver-cpus, so that a {run} fills one core")
    p.add_argument("--gpus-per-worker", type=finite_float, default=0.0, help="fractions allowed, e.g. 0.25")
    p.add_argument("--driver-cpus", type=finite_float, default=0.1, help=f"CPU held by each {run}'s driver in a worker group")
    p.add_argument("--worker-group", action="store_true",
                   help=f"train a one-worker {run} in a Ray Train worker group (its own controller and worker "
                        f"processes, 9-30 s more per {run}), not in the {run}'s own process (docs/search.md)")


def trial_resources(args):
    """A trial's resources from the run flags (sweep and compare share them), checked against a
    local Ray's machine. A one-worker trial trains in its own process, holding its worker's CPU;
    in a worker group (several workers, or --worker-group) its driver holds --driver-cpus beside
    them, and --cpus-per-worker defaults to 1 - --driver-cpus on a local Ray, so that a trial fills
    one core."""
    # here, not at the top: loads torch, ray, pandas only where this runs
    from losstune.trainables.engine.driver import TrialResources

    worker_group = args.worker_group
    local = not os.environ.get("RAY_ADDRESS")
    beside_a_driver = local and (worker_group or args.workers_per_trial > 1)
    cpus = args.cpus_per_worker if args.cpus_per_worker is not None else (
        max(0.1, 1.0 - args.driver_cpus) if beside_a_driver else 1.0)
    resources = TrialResources(args.workers_per_trial, cpus, args.gpus_per_worker, args.driver_cpus,
                               worker_group=worker_group)
    check_local_resources(resources)
    return resources


def check_regular_file(flag: str, path: str) -> None:
    """A file a flag names must be a regular file: a FIFO made the read hang with no output."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise UsageError(f"{flag}: {path}: {err.strerror}") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"{flag}: {path} is not a regular file (a FIFO, a device or a folder)")


def check_data_path(path: str | None) -> None:
    """--data names a file or a folder; a FIFO or a loop of symbolic links is said as such (both
    read as 'no such file' before)."""
    if not path:
        return
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if os.path.islink(path):
            raise UsageError(f"--data: {path}: {err.strerror} (a broken or looping symbolic link)") from None
        return  # not there: the family's own check names what it expected
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise UsageError(f"--data: {path} is neither a file nor a folder (a FIFO or a device)")
