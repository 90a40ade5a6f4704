import pandas as pd
import pytest

from losstune.ray_jobs.results.ranking import ranked
from losstune.ray_jobs.results.tables import best_checkpoint_path, own_trial_id
from losstune.ray_jobs.results.trial_stats import pareto_front

OBJECTIVES = [{"metric": "val/a", "mode": "min"}, {"metric": "val/b", "mode": "min"}]


def trials_table():
    return pd.DataFrame({
        "trial_id": ["t1", "t2", "t3", "t4", "t5", "t6"],
        "status": ["COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED", "EARLY_STOPPED", "STOPPED"],
        "is_default": [True, False, False, False, False, False],
        "stop_reason": ["", "", "", "", "", "identity_mapping"],
        "epochs_done": [4, 4, 4, 4, 2, 4],
        "objective": [3.0, 3.0, 4.0, 3.5, 0.5, 0.1],
        # t1 (1, 2) and t2 (2, 1) trade off; t3 (2, 2) is dominated by both; t4 (1, 2.5) by t1;
        # t5 and t6 would dominate everything but did not complete healthy
        "final/val/a": [1.0, 2.0, 2.0, 1.0, 0.1, 0.0],
        "final/val/b": [2.0, 1.0, 2.0, 2.5, 0.1, 0.0],
    })


def test_pareto_front_of_completed_trials_only():
    assert pareto_front(trials_table(), OBJECTIVES).tolist() == [True, True, False, False, False, False]


def test_pareto_front_respects_max_mode():
    # maximising b: t4 (1, 2.5) now beats t1 (1, 2); t2 (2, 1) and t3 (2, 2) lose to t4 on both
    objectives = [OBJECTIVES[0], {"metric": "val/b", "mode": "max"}]
    assert pareto_front(trials_table(), objectives).tolist() == [False, False, False, True, False, False]


def test_a_stopped_trial_never_outranks_the_completed_ones():
    # t5, stopped by ASHA at epoch 2 with 0.5, beats every completed value (3.0-4.0) only because
    # it was judged earlier; t6 (0.1) stopped unhealthy. Completed by value (t1 and t2 tie at 3.0,
    # by id), then t5, then t6
    order = ranked(trials_table().sample(frac=1, random_state=0), "min")["trial_id"].tolist()
    assert order == ["t1", "t2", "t4", "t3", "t5", "t6"]
    assert ranked(trials_table(), "max")["trial_id"].tolist() == ["t3", "t4", "t1", "t2", "t5", "t6"]


def test_best_checkpoint_is_the_best_scored_epoch_that_wrote_one():
    # epoch 2 scores best but wrote no checkpoint (checkpoint_every 3); epoch 4 carried epoch 3's
    # validation (NaN score); of epochs 1 and 3, which did both, epoch 3's 0.7 is the best
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "checkpoint_score": [0.9, 0.5, 0.7, float("nan")],
                            "checkpoint_path": ["/c1", None, "/c3", "/c4"]})
    assert best_checkpoint_path(history, "min") == "/c3"
    assert best_checkpoint_path(history, "max") == "/c1"
    assert best_checkpoint_path(history.drop(columns="checkpoint_score"), "min") == ""  # an older sweep
    # epochs 3 and 4 tie at 0.7: Ray ranks the later best (and may delete the earlier)
    tied = history.assign(checkpoint_score=[0.9, 0.5, 0.7, 0.7])
    assert best_checkpoint_path(tied, "min") == "/c4"


def test_cost_is_what_a_trial_holds_times_its_wall_time():
    from losstune.ray_jobs.results.trial_stats import cost_line, held, with_cost

    resources = {"workers": 2, "cpus_per_worker": 0.9, "gpus_per_worker": 0.25, "driver_cpus": 0.1}
    # 2 x 0.9 CPUs for the workers + 0.1 for the driver; 2 x 0.25 GPUs
    assert held(resources) == (pytest.approx(1.9), 0.5)
    assert held(resources | {"driver_resource": "losstune_driver"}) == (pytest.approx(1.8), 0.5)  # driver on the head
    trials = with_cost(pd.DataFrame({"wall_s": [100.0, 80.0], "epochs_done": [10, 4]}), resources)
    assert trials["cpu_s"].tolist() == pytest.approx([190.0, 152.0]) and trials["gpu_s"].tolist() == [50.0, 40.0]
    # (190 + 152) / 3600 = 0.095 CPU-hours; (50 + 40) / 3600 = 0.025 GPU-hours
    assert cost_line(trials, "trials") == ("cost: 2 trials, 14 epochs, 0.10 CPU-hours and 0.03 GPU-hours held "
                                           "(resources x wall time)")


def test_a_trials_id_is_its_own_reports_not_a_pbt_donors_result():
    # exploited, then failed before its first report: Tune's last result is the donor's
    reported = pd.DataFrame({"trial_id": ["a_00001", "a_00001"], "epoch": [1, 2]})
    assert own_trial_id({"trial_id": "a_00003"}, reported, "/s/run_trial_a_00001_1_lr=0.1") == "a_00001"
    assert own_trial_id({"trial_id": "b1"}, pd.DataFrame(), "/s/run_trial_b1_0_x") == "b1"
