"""A training worker's process set-up (trainables/engine/worker_setup.py): the allocator setting every worker makes, and
MONAI imported without its optional extras (matplotlib, transformers) while a family builds its parts."""

import json
import subprocess
import sys

import pytest

# Three 16 MB blocks allocated and freed, three rounds, in a fresh process; glibc's own counters
# (mallinfo2: `arena` is the heap's size, `hblkhd` what is mapped outside it) after each
# allocation and each free. By default the first round is mapped and unmapped (16 MB is over the
# 128 KB mmap threshold), which raises the thresholds to 16 MB (mmap) and 32 MB (trim): later
# rounds grow the heap by 48 MB and, in 3 runs of 6 here, give 32 of it back when freed, to fault
# it in again next round (whether the freed blocks reach the heap's top depends on its layout).
# Kept (mmap over 32 MB, trim over 64 MB), nothing is mapped and the heap never shrinks.
ROUNDS = """
import ctypes, json, sys, torch
from losstune.trainables.engine.worker_setup import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
took = keep_freed_memory() if sys.argv[1] == "keep" else None
counts = []
for _ in range(3):
    blocks = [torch.ones(4 << 20) for _ in range(3)]  # 4 M float32 = 16 MB each
    alive = libc.mallinfo2()
    del blocks
    freed = libc.mallinfo2()
    counts.append({"heap_alive": alive.arena >> 20, "mapped_alive": alive.hblkhd >> 20, "heap_freed": freed.arena >> 20})
print(json.dumps({"took": took, "rounds": counts}))
"""


def allocator_counts(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and mallinfo2")
def test_a_workers_freed_memory_stays_in_its_heap_instead_of_going_back_to_the_kernel():
    default, kept = allocator_counts("default"), allocator_counts("keep")
    assert default["rounds"][0]["mapped_alive"] >= 48  # the premise: by default 3 x 16 MB are mapped
    assert kept["took"] is True
    for r in kept["rounds"]:
        assert r["mapped_alive"] < 48  # from the heap, never mapped
        assert r["heap_freed"] == r["heap_alive"]  # nothing given back


# In a fresh process, since MONAI and its extras load once per process: MONAI imported inside
# `monai_extras_hidden` (as a family's build imports it), then, still inside, transformers (as npt's
# build imports it), then matplotlib after it, the usual way.
MONAI_IN_BUILD = """
import json, sys
from losstune.trainables.engine.worker_setup import monai_extras_hidden

with monai_extras_hidden():
    from monai.networks.nets import UNet
    loaded_by_monai = [name for name in ("matplotlib", "transformers") if name in sys.modules]
    import monai.networks.nets.transchex as transchex
    monai_saw_transformers = transchex.transformers[1]  # optional_import's (module, found)
    import transformers
    from transformers import AutoConfig
import monai.utils.jupyter_utils as ju
import matplotlib.pyplot
print(json.dumps({"loaded_by_monai": loaded_by_monai, "monai_saw_matplotlib": ju.has_matplotlib,
                  "monai_saw_transformers": monai_saw_transformers, "transformers_in_build": AutoConfig.__name__,
                  "matplotlib_after": matplotlib.pyplot.figure is not None}))
"""


def test_a_build_imports_monai_without_its_extras_and_they_import_as_usual_beside_it():
    pytest.importorskip("transformers")  # the hf extra, which `make` installs
    out = subprocess.run([sys.executable, "-c", MONAI_IN_BUILD], capture_output=True, text=True, check=True).stdout
    seen = json.loads(out)
    assert seen["loaded_by_monai"] == []  # MONAI loaded neither
    assert seen["monai_saw_matplotlib"] is False and seen["monai_saw_transformers"] is False  # it took them for absent
    assert seen["transformers_in_build"] == "AutoConfig"  # a build's own import, after MONAI's, works
    assert seen["matplotlib_after"] is True


def test_the_finder_refuses_only_extras_not_loaded_and_only_while_monai_imports(monkeypatch):
    import losstune.trainables.engine.worker_setup as worker_setup

    finder = worker_setup.HiddenWhileMonaiImports()
    monkeypatch.delitem(sys.modules, "transformers", raising=False)  # not loaded
    monkeypatch.setitem(sys.modules, "matplotlib", sys.modules.get("matplotlib", object()))  # loaded
    monkeypatch.setattr(worker_setup, "monai_importing", lambda: False)
    assert finder.find_spec("transformers") is None  # outside MONAI's import: imported as usual
    monkeypatch.setattr(worker_setup, "monai_importing", lambda: True)
    with pytest.raises(ModuleNotFoundError, match="hidden while MONAI imports"):
        finder.find_spec("transformers.models.bert.modeling_bert")
    assert finder.find_spec("matplotlib.pyplot") is None  # loaded already: left alone
    assert finder.find_spec("numpy") is None  # not an extra


def test_the_shuffle_order_restored_from_a_checkpoint_draws_the_next_epochs_order():
    import torch
    from torch.utils.data import DataLoader

    from losstune.trainables.engine.worker_setup import ShuffleOrder

    def loader():
        return DataLoader(list(range(16)), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(7))

    uninterrupted = loader()
    epoch1, epoch2 = (next(iter(uninterrupted)).tolist() for _ in range(2))
    crashed = loader()
    next(iter(crashed))
    saved = ShuffleOrder(crashed.generator).state_dict()
    resumed = loader()  # a restarted worker builds its loader from the seed again...
    ShuffleOrder(resumed.generator).load_state_dict(saved)  # ...and Accelerate's load_state restores the order
    assert epoch1 != epoch2  # otherwise the check below could not fail
    assert next(iter(resumed)).tolist() == epoch2
