"""What Ray Train stored of a trial's run: the history Tune lost, the best checkpoint it keeps."""

import pandas as pd

from losstune.ray_jobs.results.stored_runs import complete_history, kept_best_checkpoint


def test_history_gets_the_epochs_only_the_runs_checkpoint_kept():
    # Tune lost epoch 1 when it restarted the trial (it resumed from the epoch-1 checkpoint) and
    # has epoch 3 twice (run before the driver died, and again after the restart); its iteration
    # count restarted at 1 with the resumed trial, and the checkpoint's epoch 1 has none
    tune = pd.DataFrame({"epoch": [2, 3, 3, 4], "training_iteration": [2, 3, 1, 2], "val/a": [0.8, 0.7, 0.65, 0.6]})
    stored = pd.DataFrame({"epoch": [1, 2], "val/a": [0.9, 0.81]})
    history = complete_history(tune, stored)
    assert history["epoch"].tolist() == [1, 2, 3, 4] == history["training_iteration"].tolist()
    assert history["val/a"].tolist() == [0.9, 0.8, 0.65, 0.6]  # Tune's rows win; of two, the later
    assert complete_history(pd.DataFrame(), stored)["epoch"].tolist() == [1, 2]


def test_a_pbt_trials_history_is_its_lineage_not_the_epochs_the_donors_replaced():
    # trial t1 ran epochs 1-3 itself, then continued t0's epoch-2 checkpoint (run "t1-from-t0-c2")
    tune = pd.DataFrame({"epoch": [1, 2, 3, 3, 4], "run": ["t1", "t1", "t1", "t1-from-t0-c2", "t1-from-t0-c2"],
                         "val/a": [0.9, 0.8, 0.75, 0.6, 0.5]})
    stored = pd.DataFrame({"epoch": [1, 2, 3, 4], "run": ["t0", "t0", "t1-from-t0-c2", "t1-from-t0-c2"],
                           "val/a": [0.85, 0.7, 0.6, 0.5]})
    history = complete_history(tune, stored)
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert history["run"].tolist() == ["t0", "t0", "t1-from-t0-c2", "t1-from-t0-c2"]
    assert history["val/a"].tolist() == [0.85, 0.7, 0.6, 0.5]


def test_best_checkpoint_is_the_best_scored_of_those_ray_keeps():
    snapshot = {"checkpoint_results": [
        {"checkpoint_dir_name": "checkpoint_a", "metrics": {"checkpoint_score": 0.5}},
        {"checkpoint_dir_name": "checkpoint_b", "metrics": {"checkpoint_score": 0.3}},
        {"checkpoint_dir_name": "checkpoint_c", "metrics": {"checkpoint_score": float("nan")}}]}
    assert kept_best_checkpoint("/s/trainer_runs/t1", snapshot, "min") == "/s/trainer_runs/t1/checkpoint_b"
    assert kept_best_checkpoint("/s/trainer_runs/t1", snapshot, "max") == "/s/trainer_runs/t1/checkpoint_a"
    assert kept_best_checkpoint("/s/trainer_runs/t1", {}, "min") == ""
    # Ray lists a tie in the order reported and ranks the later best
    tied = {"checkpoint_results": snapshot["checkpoint_results"] + [
        {"checkpoint_dir_name": "checkpoint_d", "metrics": {"checkpoint_score": 0.3}}]}
    assert kept_best_checkpoint("/s/trainer_runs/t1", tied, "min") == "/s/trainer_runs/t1/checkpoint_d"
