import time
from types import SimpleNamespace

from losstune.ray_jobs.search.progress import TrialTable, table

OBJECTIVE = [{"metric": "val/log_l1", "mode": "min"}]
PARAMETERS = ["caps/mode", "caps/abs_max", "caps/log_delta_scale"]
DEFAULT = {"caps/mode": "A", "caps/abs_max": 16.0}


def trial(trial_id, status, config, **result):
    return SimpleNamespace(trial_id=trial_id, status=status, config=config, last_result=result)


def trials():
    return [
        trial("dflt", "TERMINATED", {"caps": {"mode": "A", "abs_max": 16.0}}, epoch=4, **{"val/log_l1": 1.16}),
        trial("modeb", "RUNNING", {"caps": {"mode": "B", "log_delta_scale": 0.79}}, epoch=2, **{"val/log_l1": 0.94}),
        trial("new", "PENDING", {"caps": {"mode": "A", "abs_max": 8.0}}),
    ]


def test_the_table_shows_the_objective_and_each_trials_own_parameters_best_first():
    lines = table(trials(), OBJECTIVE, PARAMETERS, DEFAULT).to_string(index=False).splitlines()
    assert lines[0].split() == ["trial", "status", "epoch", "val/log_l1", "stop", "mode", "abs_max", "log_delta_scale"]
    # mode B has no abs_max, mode A no log_delta_scale: '-'; the pending trial has no value yet
    assert lines[1].split() == ["modeb", "RUNNING", "2", "0.94", "B", "-", "0.79"]
    assert lines[2].split() == ["*", "dflt", "TERMINATED", "4", "1.16", "A", "16.0", "-"]
    assert lines[3].split() == ["new", "PENDING", "NaN", "A", "8.0", "-"]


def test_an_ended_trial_is_told_apart_as_the_results_tell_it():
    ended = [trial("full", "TERMINATED", {}, epoch=4), trial("asha", "TERMINATED", {}, epoch=2),
             trial("sick", "TERMINATED", {}, epoch=2, stop_reason="overflow"), trial("err", "ERROR", {}, epoch=1)]
    assert table(ended, OBJECTIVE, [], epochs=4)["status"].tolist() == ["COMPLETED", "EARLY_STOPPED", "STOPPED", "ERROR"]


def test_a_table_is_printed_on_a_change_at_most_every_so_often_and_always_at_the_end():
    printed = []
    reporter = TrialTable(OBJECTIVE, PARAMETERS, DEFAULT, every_s=3600, out=printed.append)
    sweep = trials()
    assert reporter.should_report(sweep)  # the first
    sweep[1].last_result = {"epoch": 3, "val/log_l1": 0.9}
    assert not reporter.should_report(sweep)  # changed, but within the hour
    assert reporter.should_report(sweep, done=True)
    assert not reporter.should_report(sweep, done=True)  # the end is shown once
    # a progress table that already showed the final state leaves the end to show it again: the
    # confirmation's "== final ==" was missing where its last runs ended within one table
    shown = TrialTable(OBJECTIVE, PARAMETERS, DEFAULT, every_s=0, out=printed.append)
    assert shown.should_report(sweep) and shown.should_report(sweep, done=True)
    reporter.report(sweep, True)
    # no epochs given, so Tune's own words; no trial has said how long it took
    assert printed[0].startswith("== final == 1/3 trials done (1 TERMINATED), 1 RUNNING, 1 PENDING; elapsed ")
    assert printed[0].endswith(", ETA once a trial has finished")


def test_each_progress_line_says_done_of_total_elapsed_and_the_time_left():
    printed = []
    reporter = TrialTable(OBJECTIVE, PARAMETERS, DEFAULT, epochs=4, every_s=0, out=printed.append)
    reporter.setup(start_time=time.time() - 100, total_samples=8)  # as Tune calls it
    sweep = trials()
    sweep[0].last_result["time_total_s"] = 60.0  # the default, finished: 60 s
    sweep[1].last_result["time_total_s"] = 20.0  # running for 20 s
    reporter.report(sweep, False)
    # left: 6 trials not started x 60 s + the running one's 40 s, on 1 slot = 400 s
    assert printed[0] == ("== progress == 1/8 trials done (1 COMPLETED), 1 RUNNING, 1 PENDING; elapsed 1m40s, "
                          "ETA ~6m40s (from 1 finished trials' median 1m00s)")
    # a RUNNING row shows its last epoch and value
    assert printed[1].splitlines()[1].split()[:4] == ["modeb", "RUNNING", "2", "0.94"]


def test_the_reporter_pickles_whatever_has_replaced_print(monkeypatch):
    # Tune pickles the run config with its reporter; Ray replaces builtins.print in the driver
    # (ray.experimental.tqdm_ray's safe_print), after which a reporter holding the old print could
    # not be pickled (7 integration sweeps failed so)
    import builtins
    import pickle

    reporter = TrialTable(OBJECTIVE, PARAMETERS, DEFAULT)
    monkeypatch.setattr(builtins, "print", lambda *args, **kwargs: None)
    assert pickle.loads(pickle.dumps(reporter)).parameters == PARAMETERS


def test_the_time_left_is_not_swayed_by_the_first_trials_start_up_and_ends_with_the_sweep():
    # the first two trials on a fresh Ray took 17 s and 16 s to start, the next three 1 s: with 2
    # pending and 1 slot the median (1 s) leaves ~2 s, where the mean (7.2 s) said ~14 s
    from types import SimpleNamespace

    from losstune.ray_jobs.search.progress import eta

    done = [SimpleNamespace(status="TERMINATED", last_result={"time_total_s": s}) for s in (17.0, 16.0, 1.0, 1.0, 1.0)]
    assert eta(done, 7).startswith(", ETA ~2s (from 5 finished trials' median 1s)")
    # every trial errored before reporting a time: the sweep is over, no "ETA once a trial has finished"
    errored = [SimpleNamespace(status="ERROR", last_result={}) for _ in range(3)]
    assert eta(errored, 3) == ""
