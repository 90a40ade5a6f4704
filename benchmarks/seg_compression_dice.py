""".venv/bin/python benchmarks/seg_compression_dice.py [--epochs 3] [--size 64] [--set KEY=VALUE ...]

Issue 73, item 3: does medgen_compression's seg_compression mode learn on real anatomy? Trains the
`seg_compression` preset at smoke sizes (and --size px slices) on the MNI-based subjects the tests
build from nibabel's own MRI (tests/data/real_mri.py: 6-29 mm tumours, most slices tumour-free), in
this process, and prints per epoch the decoded masks' val/dice and each training term. --set
changes the config (e.g. loss.weights.boundary=0) to test a cause. Nothing starts Ray.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from losstune.trainables.config import merge
from losstune.trainables.engine.session import LocalSession
from losstune.trainables.registry import load_family

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def main() -> None:
    # here, not at the top: loads torch, accelerate only where this runs
    from losstune.ray_jobs.cli.flags import parse_set
    from losstune.trainables.engine.loop import train
    from tests.data.real_mri import brain_subjects

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--size", type=int, default=64, help="slice side in px")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    family = load_family("medgen_compression")
    with tempfile.TemporaryDirectory() as folder:
        subjects = brain_subjects(os.path.join(folder, "subjects"))
        config = merge(merge(merge(family.presets["seg_compression"], family.smoke),
                             {"data": {"path": subjects, "image_size": args.size}, "train": {"epochs": args.epochs}}),
                       parse_set(args.set))
        session = LocalSession(os.path.join(folder, "run"))
        started = time.time()
        train(family, config, session)
    for report in session.reports:
        terms = ", ".join(f"{k.removeprefix('train/')} {v:.4g}" for k, v in report.items()
                          if k.startswith("train/") and "/" not in k.removeprefix("train/") and isinstance(v, float))
        print(f"epoch {report['epoch']}: val/dice {report['val/dice']:.4f}, val/dice_loss {report['val/dice_loss']:.4f}; "
              f"train {terms}")
    print(f"{time.time() - started:.0f} s; --set {' '.join(args.set) or '(none)'}")


if __name__ == "__main__":
    main()
