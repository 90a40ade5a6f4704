"""Population Based Training and HyperBand sweeps on a real local Ray: a PBT trial continues a
better trial's checkpoint with mutated settings, and its history says so."""

import pandas as pd
import pytest

from losstune.ray_jobs import sweep

pytestmark = pytest.mark.integration

# three trials at once on 2 CPUs (0.4 + the driver's 0.1 each): the whole population runs together
THREE_AT_ONCE = ["--trials", "3", "--cpus-per-worker", "0.4"]


def test_pbt_exploits_and_the_exploited_trial_continues_from_the_donors_epoch(local_ray, tmp_path, capsys):
    # in step (--population-sync), every trial is ranked at epoch 1 beside the others, so the worse
    # of the two that are not the default is exploited. Asynchronous PBT ranks a trial only against
    # trials scored by then: in a smoke test the default may finish before the others start, and CI
    # twice saw no trial exploited.
    code = sweep.main(["latent_conditioner", "--space", "schedule", "--scheduler", "pbt", *THREE_AT_ONCE, "--smoke-test",
                       "--epochs", "2", "--grace-epochs", "1", "--population-sync",
                       "--storage", str(tmp_path), "--name", "pbt"])
    out = capsys.readouterr().out
    assert code == 0
    trials = pd.read_parquet(tmp_path / "pbt" / "trials.parquet")
    history = pd.read_parquet(tmp_path / "pbt" / "history.parquet")
    assert len(trials) == 3 and (trials["status"] == "COMPLETED").all()
    default = trials[trials["is_default"]].iloc[0]
    assert " > " not in default["lineage"]  # the baseline is never replaced
    exploited = trials[trials["lineage"].str.contains(" > ")]
    assert len(exploited) == 1, trials[["trial_id", "lineage"]]  # the lower quarter of 3, rounded up: one trial
    trial = exploited.iloc[0]
    own = history[history["trial_id"] == trial["trial_id"]].sort_values("epoch")
    assert own["epoch"].tolist() == [1, 2]  # one row per epoch, the lineage's
    donor_epoch, continued = own.iloc[0], own.iloc[1]
    # epoch 1 was trained by the donor's run, epoch 2 by a run that continued the donor's checkpoint
    assert continued["run"].startswith(f"{trial['trial_id']}-from-") and donor_epoch["run"] != continued["run"]
    assert trial["lr_by_epoch"].count(" ") == 1  # the rate of each of the 2 epochs
    assert "lineage" in out and "3 trials of latent_conditioner over 'schedule', as one population, in step" in out


def test_pb2_population_larger_than_the_cluster_takes_turns_to_the_end(local_ray, tmp_path):
    # 3 trials, 2 at a time (a worker's 0.9 CPU + its driver's 0.1): the drivers share the trial
    # slot, PB2 pauses a trial at its perturbation while another waits, and every trial finishes
    code = sweep.main(["latent_conditioner", "--space", "schedule", "--scheduler", "pb2", "--trials", "3",
                       "--smoke-test", "--epochs", "2", "--grace-epochs", "1", "--storage", str(tmp_path),
                       "--name", "pb2"])
    assert code == 0
    trials = pd.read_parquet(tmp_path / "pb2" / "trials.parquet")
    history = pd.read_parquet(tmp_path / "pb2" / "history.parquet")
    assert len(trials) == 3 and (trials["status"] == "COMPLETED").all() and trials["is_default"].sum() == 1
    assert trials["lineage"].str.len().gt(0).all()
    for trial_id, own in history.groupby("trial_id"):
        assert sorted(own["epoch"]) == [1, 2], trial_id  # paused and resumed: no epoch lost or repeated


def test_hyperband_sweep_finishes_with_the_default_at_full_length(local_ray, tmp_path):
    code = sweep.main(["latent_conditioner", "--space", "weights", "--scheduler", "hyperband", "--trials", "4",
                       "--smoke-test", "--epochs", "4",
                       "--confirm-top", "0", "--storage", str(tmp_path), "--name", "hb"])
    assert code == 0
    trials = pd.read_parquet(tmp_path / "hb" / "trials.parquet")
    assert len(trials) == 4 and trials["status"].isin(["COMPLETED", "EARLY_STOPPED"]).all()
    assert trials.loc[trials["is_default"], "epochs_done"].item() == 4
