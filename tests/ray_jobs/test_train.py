"""ray_jobs.train's pick of the best kept checkpoint."""

import math

from losstune.ray_jobs.train import best_checkpoint
from losstune.trainables.checkpoint_score import CHECKPOINT_SCORE


def kept(*scores):
    return [(f"checkpoint_{epoch}", {"epoch": epoch, CHECKPOINT_SCORE: score}) for epoch, score in enumerate(scores, 1)]


def test_the_best_score_wins_and_epochs_without_their_own_validation_are_passed_over():
    # epoch 2 carried epoch 1's validation (NaN score): min over 0.9, 0.7 is epoch 3's 0.7
    assert best_checkpoint(kept(0.9, math.nan, 0.7, 0.8), "min")[0] == "checkpoint_3"
    assert best_checkpoint(kept(0.9, math.nan, 0.7, 0.8), "max")[0] == "checkpoint_1"


def test_no_scored_checkpoint_gives_none():
    assert best_checkpoint(kept(math.nan), "min") is None
    assert best_checkpoint([], "min") is None


def test_a_line_per_epoch_gives_the_objective_the_loss_and_the_time():
    from losstune.ray_jobs.search.progress import epoch_line

    values = {"epoch": 3, "val/log_l1": 0.94321, "train/loss": 1.5, "time/epoch_s": 12.34, "stop_reason": ""}
    assert epoch_line(values, "val/log_l1", "train/loss", 10) == "epoch 3/10  val/log_l1 0.9432  train/loss 1.5  12.3 s"
    stopped = epoch_line({**values, "stop_reason": "overflow"}, "val/log_l1", "train/loss", 10)
    assert stopped.endswith("  stopped: overflow")


def test_smoke_test_shrinks_a_run_and_the_flags_still_win():
    from losstune.ray_jobs.train import overrides_from, parse_args
    from losstune.trainables.registry import load_family

    family = load_family("hdr_patch")
    overrides = overrides_from(parse_args(["hdr_patch", "--smoke-test", "--epochs", "3"]), family)
    assert overrides["data"] == family.smoke["data"] and overrides["train"]["epochs"] == 3


def test_a_name_that_is_no_run_of_this_family_and_config_is_refused_before_ray_starts(capsys, tmp_path, monkeypatch):
    # lgt trained into an hdr_patch sweep's folder (exit 0), another family's run gave a state-dict
    # traceback after Ray started, and a changed --set on a finished run was silently ignored
    import json

    from losstune.ray_jobs.core import cluster
    from losstune.ray_jobs import train
    from losstune.ray_jobs.results.tables import META_FILE
    from losstune.trainables.config import to_dict
    from losstune.trainables.family_api import make_config
    from losstune.trainables.registry import load_family

    monkeypatch.setattr(cluster, "start_ray", lambda verbose: (_ for _ in ()).throw(AssertionError("Ray started")))
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / META_FILE).write_text("{}")
    (tmp_path / "run").mkdir()
    config = to_dict(make_config(load_family("lgt"), load_family("lgt").smoke))
    (tmp_path / "run" / train.RUN_FILE).write_text(json.dumps({"family": "lgt", "config": config}, default=str))
    for argv, expected in [
        (["lgt", "--name", "sweep"], f"--name: {tmp_path / 'sweep'} is a sweep's folder, not a train run"),
        (["hdr_patch", "--name", "run"], f"--name: {tmp_path / 'run'} trained 'lgt', not 'hdr_patch'"),
        (["lgt", "--smoke-test", "--name", "run", "--set", "optim.lr=0.5"],
         f"--name: {tmp_path / 'run'} was trained with another config (optim.lr differ)"),
    ]:
        assert train.main([*argv, "--storage", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"train: error: {expected}") and len(err.splitlines()) == 1
    train.check_resumed_run(str(tmp_path), "run", "lgt", config)  # the same family and config resume
