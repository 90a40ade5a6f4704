"""What a training worker's process needs before the loop runs: Accelerate for this worker, glibc
kept from returning freed memory, MONAI's optional extras kept out of its import, and the peak-memory
figure the loop reports."""

from __future__ import annotations

import contextlib
import ctypes
import importlib.abc
import os
import resource
import sys

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from losstune.trainables.config import ConfigError

# What Ray Train sets in each worker for torch.distributed; Accelerate reads them to pick its mode
TORCH_DISTRIBUTED_ENV = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")


def make_accelerator(cfg, world_size: int = 1) -> Accelerator:
    """Accelerate for this worker: distributed (DDP) when the run has several workers, else plain.

    Accelerate picks its distributed mode from LOCAL_RANK alone, which Ray Train sets in every
    worker, so a one-worker trial (every trial of a local sweep) would train a
    DistributedDataParallel model over a world of one: a gradient all-reduce that moves nothing,
    2.3% of an hdr_patch step here (benchmarks/step_overhead.py). With one worker the variables are
    hidden while Accelerate reads them; the gradients are the same either way."""
    alone = world_size == 1
    hidden = {name: os.environ.pop(name) for name in TORCH_DISTRIBUTED_ENV if alone and name in os.environ}
    try:
        return Accelerator(mixed_precision=cfg.train.mixed_precision, cpu=not torch.cuda.is_available())
    finally:
        os.environ.update(hidden)


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# Where glibc's adaptive thresholds end at most on 64-bit: blocks up to 32 MB from the heap, and
# the heap's top given back once 64 MB of it is free.
HEAP_BLOCKS_UP_TO, TRIM_ABOVE = 32 << 20, 64 << 20


def keep_freed_memory() -> bool:
    """Start glibc's malloc where its adaptive thresholds end; True if it took.

    By default glibc serves blocks over 128 KB with mmap and gives back what is freed at the top
    of its heap, and it raises both thresholds only as it sees mapped blocks freed. Meanwhile a
    training step, which frees and reallocates the same activations every time, faults its memory
    in again page by page: on hdr_patch 2,000-5,000 page faults an epoch, up to 3% of it in the
    kernel, and the platform's epoch 2.7-4.0% behind the bare loop instead of 0.9-2.0%
    (benchmarks/step_overhead.py). Setting either threshold also turns off the adaptive ones, so
    the mmap threshold goes first and the trim threshold only if it took: alone, it would leave
    every block over 128 KB to mmap. Other C libraries are left as they are."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl)
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, HEAP_BLOCKS_UP_TO) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_ABOVE))


# What MONAI's first import loads for parts no trial uses, each of which MONAI treats as optional:
# matplotlib.pyplot for its plotting helpers (0.4 s in a fresh process), and, where transformers is
# installed (the hf extra), BERT for its Transchex network, which pulls in torch._dynamo and a
# good part of transformers: 3-5 s of every trial's startup on 2 cores (benchmarks/history.md).
MONAI_EXTRAS = ("matplotlib", "transformers")


def monai_importing() -> bool:
    """Whether MONAI's own first import is running: the import system marks a module's spec
    `_initializing` while the module's code runs (CPython's, undocumented: without it nothing is
    hidden)."""
    spec = getattr(sys.modules.get("monai"), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


class HiddenWhileMonaiImports(importlib.abc.MetaPathFinder):
    """A finder that answers "not installed" for MONAI_EXTRAS not yet loaded, and only to imports
    made while MONAI's first import runs: MONAI then takes them for absent, and any other code,
    a family's build included (npt reads Hugging Face checkpoints with transformers), imports them
    as usual, before MONAI, after it, or within the same `with`."""

    def find_spec(self, name, path=None, target=None):
        package = name.partition(".")[0]
        if package in MONAI_EXTRAS and package not in sys.modules and monai_importing():
            raise ModuleNotFoundError(f"{name}: hidden while MONAI imports (trainables.engine.worker_setup)", name=name)
        return None


@contextlib.contextmanager
def monai_extras_hidden():
    """MONAI, if a family's build imports it here, loads without MONAI_EXTRAS. Where MONAI or an
    extra is loaded already, nothing changes."""
    finder = HiddenWhileMonaiImports()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's ru_maxrss is no good for it: a child process
    inherits its parent's peak across fork and exec (a worker would report its spawner's peak if
    that was higher); /proc's VmHWM is the process's own."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere; Linux reports KiB


class ShuffleOrder:
    """The training loader's shuffling generator, checkpointed through Accelerate
    (`register_for_checkpointing` wants state_dict / load_state_dict; a Generator has neither).
    Without it a resumed run draws epoch 1's order again where the uninterrupted run draws the
    next epoch's, and ends elsewhere."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def make_loaders(parts, cfg) -> tuple[DataLoader, DataLoader]:
    """The training loader (shuffled from train.seed, whole batches only) and the validation loader."""
    train_loader = DataLoader(parts.train_set, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True,
                              num_workers=cfg.train.num_data_workers,
                              generator=torch.Generator().manual_seed(cfg.train.seed))
    val_loader = DataLoader(parts.val_set, batch_size=cfg.train.batch_size, num_workers=cfg.train.num_data_workers)
    if len(train_loader) == 0:
        raise ConfigError("train.batch_size", f"is larger than the training set ({len(parts.train_set)} samples)")
    return train_loader, val_loader
