"""Every family's documented default at its smoke-test size trains its epochs in-process (the loop's
set_up, run_epoch, evaluate and epoch_metrics; no Ray) without a health stop: a --smoke-test sweep
of each family's default space exists to show that things run, and its first trial is this one.
Before, hdr_patch's default stopped for `overflow` at epoch 2 of 2 (val/overflow_frac 0.16 on a
network two epochs old), so every smoke sweep of it ended "no healthy finished trial" (issue 55)."""

import pytest

from losstune.trainables.config import merge
from losstune.trainables.engine.epoch_metrics import epoch_metrics, evaluate
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import FAMILIES, load_family
from losstune.trainables.engine.loop import run_epoch, set_up


def smoke_epochs(name: str) -> list[dict]:
    family = load_family(name)
    run, train_loader, val_loader, extras = set_up(family, merge(family.smoke, {"train": {"seed": 0}}))
    reports, step = [], 0
    for epoch in range(run.cfg.train.epochs):
        family.on_epoch_start(run.accelerator.unwrap_model(run.model), epoch, run.cfg)
        stats, step = run_epoch(run, train_loader, step)
        validation = dict(evaluate(run, val_loader, extras, epoch + 1), val_epoch=epoch + 1)
        reports.append(epoch_metrics(run, stats, epoch, validation))
    return reports


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_documented_default_trains_its_smoke_test_without_a_health_stop(name):
    reports = smoke_epochs(name)
    assert len(reports) == make_config(load_family(name), load_family(name).smoke).train.epochs
    assert [r["stop_reason"] for r in reports] == [""] * len(reports), reports[-1]
