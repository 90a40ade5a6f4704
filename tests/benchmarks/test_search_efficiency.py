"""The search benchmark's protocol: anytime curves, censored compute to the target, the speed-up
over random search with its bootstrap interval, and regret at equal compute."""

import json
import math
import os
import sys

import pandas as pd
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

import search_efficiency  # noqa: E402
import search_regret  # noqa: E402
import search_report  # noqa: E402
import search_runs  # noqa: E402
import search_stats  # noqa: E402
import search_tasks  # noqa: E402
from search_runs import Recorder  # noqa: E402
from search_stats import (bootstrap_ci, censored_median, compute_to_target, incumbent_at, seed_agreement,  # noqa: E402
                          speedup, summarise)

from losstune.ray_jobs.core.provenance import git_state  # noqa: E402

INF = math.inf


def test_the_incumbent_is_the_best_healthy_full_length_value_so_far():
    recorder = Recorder("val/loss", "min", full_length=2, budget=5)
    results = [("a", {"epoch": 1, "val/loss": 0.1, "time_total_s": 3.0}),  # not full length: no incumbent
               ("a", {"epoch": 2, "val/loss": 0.5, "time_total_s": 5.0}),  # a's final: 0.5
               ("b", {"epoch": 1, "val/loss": 0.4, "time_total_s": 2.0}),
               ("b", {"epoch": 2, "val/loss": 0.3, "time_total_s": 4.0, "stop_reason": "overflow"}),  # unhealthy
               ("c", {"epoch": 2, "val/loss": 0.2, "time_total_s": 1.0})]  # better final
    for trial_id, result in results:
        assert recorder(trial_id, result) is False
    # epochs spent; slot seconds = each trial's latest time_total_s summed (a 5 + b 4 + c 1 = 10)
    assert [p[0] for p in recorder.points] == [1, 2, 3, 4, 5]
    assert [p[1] for p in recorder.points] == [3.0, 5.0, 7.0, 9.0, 10.0]
    assert math.isnan(recorder.points[0][2]) and [p[2] for p in recorder.points[1:]] == [0.5, 0.5, 0.5, 0.2]
    assert recorder.stop_all()  # 5 epochs: the budget
    # Tune's second copy of a function trainable's last result, marked done, is no epoch spent
    recorder("c", {"epoch": 2, "val/loss": 0.2, "time_total_s": 1.0, "training_iteration": 1})
    recorder("c", {"epoch": 2, "val/loss": 0.2, "time_total_s": 1.0, "training_iteration": 1, "done": True})
    assert len(recorder.points) == 6
    maximised = Recorder("val/dice", "max", full_length=1, budget=9)
    for value in (0.5, 0.7, 0.6):
        maximised("t", {"epoch": 1, "val/dice": value})
    assert maximised.incumbent == 0.7 and not maximised.stop_all()


def test_compute_to_target_is_censored_where_the_target_is_never_reached():
    points = [(1, 10.0, math.nan), (2, 20.0, 0.5), (3, 30.0, 0.3), (4, 40.0, 0.3)]
    assert compute_to_target(points, 0.3, "min") == 3  # reached when equal
    assert compute_to_target(points, 0.3, "min", column=1) == 30.0
    assert compute_to_target(points, 0.2, "min") == INF
    assert compute_to_target(points, 0.4, "max") == 2  # maximised: 0.5 >= 0.4 at epoch 2
    assert incumbent_at(points, 2) == 0.5 and incumbent_at(points, 100) == 0.3 and math.isnan(incumbent_at(points, 1))


def test_the_censored_median_is_when_half_the_seeds_got_there():
    # 4 seeds: the 2nd smallest; 3 seeds: the 2nd smallest (ceil(3/2) = 2)
    assert censored_median([40, 10, INF, 20]) == 20
    assert censored_median([5, INF, INF]) == INF  # fewer than half got there
    assert censored_median([7, 3, 9]) == 7


def test_the_speedup_is_the_ratio_of_the_censored_medians():
    # random: 40, 80, 120, inf -> median 80 (2nd of 4); method: 10, 20, 30, 40 -> 20; 80 / 20 = 4
    assert speedup([40, 80, 120, INF], [10, 20, 30, 40]) == 4.0
    assert speedup([40, 80, 120, INF], [INF, INF, 30, INF]) == 0.0  # never at half the seeds: no speed-up
    assert speedup([INF, INF], [10, 20]) == INF
    assert math.isnan(speedup([INF, INF], [INF, INF]))


def test_the_bootstrap_interval_holds_the_estimate_and_is_exact_without_spread():
    assert bootstrap_ci([100] * 10, [25] * 10) == (4.0, 4.0)  # every resample gives 100 / 25
    random = [60, 80, 90, 100, 110, 120, 150, 200, INF, INF]
    method = [10, 15, 20, 25, 30, 30, 40, 50, 60, INF]
    low, high = bootstrap_ci(random, method, draws=2000)
    estimate = speedup(random, method)  # medians 110 (5th of 10) and 30 -> 3.67
    assert estimate == pytest.approx(110 / 30) and low < estimate < high
    assert low > 1  # the method is clearly faster here


def run(method, seed, finals, budget=4):
    """A run whose incumbent after epoch i is finals[i - 1]."""
    return {"method": method, "seed": seed, "budget": budget,
            "points": [(i + 1, 10.0 * (i + 1), value) for i, value in enumerate(finals)]}


def test_summarise_takes_the_target_from_random_search_and_compares_every_method_with_it():
    runs = [run("random", 0, [math.nan, 0.5, 0.5, 0.4]), run("random", 1, [math.nan, 0.6, 0.6, 0.6]),
            run("random", 2, [math.nan, 0.7, 0.5, 0.5]),
            run("tpe-asha", 0, [0.6, 0.4, 0.3, 0.3]), run("tpe-asha", 1, [0.5, 0.5, 0.5, 0.5]),
            run("tpe-asha", 2, [0.5, 0.45, 0.45, 0.45])]
    s = summarise(runs, "min")
    # random finals 0.4, 0.6, 0.5 -> target 0.5; random reaches it at epochs 2, never, 3 -> censored
    # median 3 (2nd smallest of 3); tpe reaches 0.5 at 2, 1, 1 -> 1: speed-up 3
    assert s["target"] == 0.5 and s["best"] == 0.3 and s["budget"] == 4
    tpe, random = s["methods"]["tpe-asha"], s["methods"]["random"]
    assert (random["reached"], tpe["reached"]) == (2, 3) and random["seeds"] == 3
    assert tpe["speedup"] == 3.0 and random["speedup"] == 1.0
    assert tpe["speedup_slot_s"] == 3.0  # slot seconds here are 10 x epochs
    assert s["needed"] == 1.0  # 3x: random search's censored median 3, over 3
    # regret at 4 epochs against the best 0.3: tpe 0, 0.2, 0.15 -> median 0.15; random 0.1, 0.3, 0.2 -> 0.2
    assert tpe["regret_median"] == pytest.approx(0.15) and random["regret_median"] == pytest.approx(0.2)


def test_the_needed_line_puts_the_target_speedup_in_epochs_and_full_length_trials():
    # random search's censored median 153 epochs / 3 = 51 epochs, of 10 a trial: 5.1 trials
    line = search_report.needed_line(51.0, 10, 4, 8, 10)
    assert "within 51 epochs on half the seeds (5.1 full-length trials)" in line
    assert "the default (10 epochs) and 4 random trials" in line and "reached on 8 of 10 seeds" in line


def test_a_bound_above_zero_needs_the_target_on_most_seeds():
    # random search reached it on 5 of 10. A method at 1 epoch on 7 of 10: a resample of 10 draws 5
    # or more of its 3 misses with P(Binomial(10, 0.3) >= 5) = 0.15, and where random search's resample
    # is not censored too (its median censored with P(Binomial(10, 0.5) >= 5) = 0.62) that speed-up is
    # 0: 0.15 x 0.38 / (1 - 0.15 x 0.62) = 6% of the kept draws, past the 2.5% tail. On 8 of 10:
    # 0.033 x 0.38 / 0.98 = 1.3%, inside it
    random = [28, 60, 99, 102, 126] + [INF] * 5
    assert search_stats.seeds_for_a_bound(random) == 8
    # random search never got there: a method's median reached at all is infinitely faster
    assert search_stats.seeds_for_a_bound([INF] * 4) == 2
    assert search_stats.seeds_for_a_bound([10, 10, 10, 10]) == 4  # a miss on any seed can censor


def test_regret_is_at_what_random_search_spent_at_that_seed():
    # random search's seed 1 spent 2 epochs (its other trials stopped early), seed 0 all 4: the
    # method's regret at seed 1 is its incumbent after 2 epochs (0.5 - 0.3 = 0.2), at seed 0 after
    # 4 (0.3 - 0.3 = 0); median of (0, 0.2) = 0.1
    runs = [run("random", 0, [math.nan, 0.5, 0.5, 0.4]), run("random", 1, [math.nan, 0.6]),
            run("tpe-asha", 0, [0.6, 0.4, 0.3, 0.3]), run("tpe-asha", 1, [0.5, 0.5, 0.3, 0.3])]
    s = summarise(runs, "min")
    assert s["budget"] == 4 and s["budget_median"] == 3.0
    assert s["methods"]["tpe-asha"]["regret_median"] == pytest.approx(0.1)


def test_a_method_that_sets_its_own_startup_trials_keeps_them(tmp_path):
    task = search_tasks.TASKS["hdr_all"]

    def startup_flags(method):
        argv = search_runs.method_argv(task, method, 0, 32, (), str(tmp_path), 5, startup=4)
        return [argv[i + 1] for i, flag in enumerate(argv) if flag == "--startup-trials"]

    assert startup_flags("tpe-asha") == ["4"]  # the protocol's
    assert startup_flags("tpe8-asha") == ["8"]  # its own, not the protocol's as well
    assert startup_flags("random") == [] and startup_flags("pbt") == []  # no model, no start-up


def test_the_paired_comparison_is_at_what_random_search_spent_at_each_seed():
    # budgets (random's spend): seed 0 4 epochs, seed 1 2 (its last point is epoch 2), seed 2 4.
    # random at its spend: 0.4, 0.6, 0.5. tpe at the same epochs: seed 0 0.3 (after 4), seed 1 0.72
    # (after 2, not its later 0.2), seed 2 0.45 -> differences -0.1, +0.12, -0.05: median -0.05,
    # better (lower) at 2 of 3; Wilcoxon on them: |d| ranks 2, 3, 1, W+ = 3 (the +0.12), the centre
    # of the exact null (W+ in 0..6, symmetric about 3): two-sided p = 2 x P(W+ <= 3) = 2 x 5/8, capped at 1
    runs = [run("random", 0, [math.nan, 0.5, 0.5, 0.4]), run("random", 1, [math.nan, 0.6]),
            run("random", 2, [math.nan, 0.7, 0.5, 0.5]),
            run("tpe-asha", 0, [0.6, 0.4, 0.3, 0.3]), run("tpe-asha", 1, [0.9, 0.72, 0.2, 0.2]),
            run("tpe-asha", 2, [0.5, 0.45, 0.45, 0.45])]
    paired = summarise(runs, "min")["methods"]["tpe-asha"]["paired"]
    assert paired["seeds"] == 3 and paired["better"] == 2 and paired["median"] == pytest.approx(-0.05)
    assert paired["p"] == pytest.approx(1.0)
    low, high = paired["ci"]  # resampled medians lie between the smallest and largest difference
    assert -0.1 - 1e-12 <= low <= -0.05 <= high <= 0.12 + 1e-12
    # the same runs with every value negated and maximised: differences +0.1, -0.12, +0.05, and the
    # method is better where they are positive, at the same 2 seeds
    flipped = [{**r, "points": [(e, t, -v) for e, t, v in r["points"]]} for r in runs]
    negated = summarise(flipped, "max")["methods"]["tpe-asha"]["paired"]
    assert negated["better"] == 2 and negated["median"] == pytest.approx(0.05)
    line = search_report.paired_line("tpe-asha", paired)
    assert "median -0.05 [95% CI" in line and "better at 2 of 3 seeds, Wilcoxon p 1" in line


def test_every_method_gets_what_random_search_spent_at_its_seed_and_a_population_what_that_affords(tmp_path):
    settings = {"trials": 32, "extra": (), "startup": 4}
    runs = {("lc_weights", "random", 3): fake_run(None, "random", 3, [], 0)}
    runs[("lc_weights", "random", 3)]["points"][-1][0] = 163  # 27 of 32 trials stopped after 3 epochs
    argv = {m: search_runs.method_argv(search_tasks.TASKS["lc_weights"], m, 3, 32, (), str(tmp_path), None)
            for m in ("random", "tpe-asha", "pbt")}
    with_budget = search_efficiency.with_budget
    assert with_budget(("lc_weights", "random", 3), argv["random"], runs, settings, str(tmp_path), None) == \
        (argv["random"], 320)  # 32 trials x 10 epochs: it runs them all
    assert with_budget(("lc_weights", "tpe-asha", 3), argv["tpe-asha"], runs, settings, str(tmp_path), None) == \
        (argv["tpe-asha"], 163)
    pbt, budget = with_budget(("lc_weights", "pbt", 3), argv["pbt"], runs, settings, str(tmp_path), None)
    assert budget == 163 and pbt[pbt.index("--trials") + 1] == "16"  # 16 full-length trials fit in 163 epochs


def test_the_anytime_plot_is_written(tmp_path):
    runs = [run("random", 0, [math.nan, 0.5, 0.5, 0.4]), run("random", 1, [math.nan, 0.6, 0.6, 0.6]),
            run("tpe-asha", 0, [0.6, 0.4, 0.3, 0.3]), run("tpe-asha", 1, [0.5, 0.5, 0.5, 0.5])]
    path = tmp_path / "anytime.png"
    search_report.plot("task", runs, summarise(runs, "min"), str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gp_and_cmaes_are_skipped_on_a_space_with_choices_and_run_on_a_continuous_one():
    assert "categorical parameters" in search_runs.method_fits(search_tasks.TASKS["hdr_caps"], "gp-asha")
    assert search_runs.method_fits(search_tasks.TASKS["lc_weights"], "cmaes-asha") == ""
    assert search_runs.method_fits(search_tasks.TASKS["hdr_caps"], "tpe-asha") == ""
    assert "define-by-run" in search_runs.method_fits(search_tasks.TASKS["hdr_caps"], "pbt")
    assert search_runs.method_fits(search_tasks.TASKS["lc_weights"], "pb2") == ""
    assert search_runs.method_fits(search_tasks.TASKS["hdr_all"], "tpe-hyperband") == ""


def test_the_lgt_task_trains_a_flow_that_can_leave_the_identity_and_every_method_can_search_it(tmp_path):
    # at the smoke defaults (pooled SWD, 32 latents) every lgt trial stopped as an identity mapping
    # at epoch 4: the task's flags must reach the trial's config
    task = search_tasks.TASKS["lgt_energy"]
    argv = search_runs.method_argv(task, "random", 0, 32, (), str(tmp_path), None)
    cfg = search_runs.task_config(task, argv)
    assert cfg.loss.stratified and cfg.data.num_train == 128 and cfg.optim.lr == 1e-4  # the seed's lr
    assert search_runs.full_length(task, argv) == 10
    assert all(search_runs.method_fits(task, m) == "" for m in search_tasks.METHODS if m != "prior-wrong-asha")
    # its prior is a recorded landscape's worst config: without --replay nothing says where that is
    assert "replayed only" in search_runs.method_fits(task, "prior-wrong-asha")


def test_seed_agreement_matches_configs_by_launch_order():
    # configs p, q, r (launch order 0, 1, 2) at two training seeds; `b` lists them in another order.
    # Seed a: p 1.0, q 2.0, r 3.0; seed b: p 2.5, q 2.0, r 3.0 -> ranks (1,2,3) vs (2,1,3):
    # Spearman = 1 - 6*(1+1+0)/(3*(9-1)) = 0.5; a's best (p) ranks 2nd in b; spread = median 2.0 -
    # best 1.0 = 1.0; distances from each seed's median (2.0, 2.5): a -1, 0, 1; b 0, -0.5, 0.5;
    # changes 1, 0.5, 0.5 -> median 0.5
    a = pd.DataFrame({"trial_index": [0, 1, 2], "config/lr": [0.1, 0.2, 0.3], "config/train/seed": [0, 0, 0],
                      "best_objective": [1.0, 2.0, 3.0]})
    b = pd.DataFrame({"trial_index": [2, 0, 1], "config/lr": [0.3, 0.1, 0.2], "config/train/seed": [1, 1, 1],
                      "best_objective": [3.0, 2.5, 2.0]})
    assert seed_agreement(a, b) == {"configs": 3, "spearman": 0.5, "a_best_rank_in_b": 2, "spread": 1.0,
                                    "seed_change": 0.5}
    # maximised: the same values negated give the same figures
    assert seed_agreement(a.assign(best_objective=-a["best_objective"]),
                          b.assign(best_objective=-b["best_objective"]), mode="max")["spearman"] == 0.5
    # different configs at the same launch position: refused, not compared
    with pytest.raises(ValueError, match="config/lr"):
        seed_agreement(a, b.assign(**{"config/lr": [0.3, 0.1, 0.9]}))


def refusal(monkeypatch, capsys, *flags) -> str:
    """main()'s one-line error for `flags`, after checking it exits 2 before Ray starts."""
    monkeypatch.setattr(sys, "argv", ["search_efficiency.py", *flags])
    monkeypatch.setattr(search_efficiency, "start_local_ray", lambda: pytest.fail("Ray started"))
    with pytest.raises(SystemExit) as exit_info:
        search_efficiency.main()
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_too_few_seeds_and_no_random_search_are_refused_before_ray_starts(monkeypatch, capsys):
    assert refusal(monkeypatch, capsys, "--seeds", "1") == \
        "search_efficiency.py: error: --seeds: 1: a median and its interval need at least 2"
    assert refusal(monkeypatch, capsys, "--methods", "tpe-asha") == \
        "search_efficiency.py: error: --methods: random search is the reference every figure is relative to; keep it"


def test_summary_only_needs_the_folder_of_earlier_runs(monkeypatch, capsys, tmp_path):
    assert refusal(monkeypatch, capsys, "--summary-only") == \
        "search_efficiency.py: error: --summary-only: needs the --folder of earlier runs (none given)"
    (tmp_path / "file").write_text("")
    assert refusal(monkeypatch, capsys, "--folder", str(tmp_path / "file")) == \
        f"search_efficiency.py: error: --folder: {tmp_path / 'file'} is a file, not a folder"


def fake_run(task, method, seed, argv, budget):
    """A sweep's record without Ray: the incumbent reaches 1.0 - seed / 10 at epoch 2 of a 4-epoch budget."""
    return {"method": method, "seed": seed, "points": [[1, 1.0, math.nan], [2, 2.0, 1.0 - seed / 10],
                                                       [3, 3.0, 1.0 - seed / 10], [4, 4.0, 1.0 - seed / 10]],
            "budget": 4, "wall_s": 1.0}


def test_a_folder_keeps_each_sweep_and_a_rerun_runs_only_the_missing_ones(monkeypatch, capsys, tmp_path):
    ran = []
    monkeypatch.setattr(search_efficiency, "start_local_ray", lambda: None)
    monkeypatch.setattr(search_efficiency, "run_method", lambda *a: ran.append(a[1:3]) or fake_run(*a))
    flags = ["search_efficiency.py", "--tasks", "lc_weights", "--methods", "random", "--folder", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", [*flags, "--seeds", "2"])
    search_efficiency.main()
    assert ran == [("random", 0), ("random", 1)]
    assert (tmp_path / "lc_weights" / "random-1.json").exists() and not list(tmp_path.rglob("*.part"))
    here = git_state(os.path.join(os.path.dirname(__file__), "..", ".."))  # {} outside a git checkout
    kept = json.loads((tmp_path / "lc_weights" / "random-1.json").read_text())
    assert kept.get("commit") == here.get("commit") and kept.get("dirty") == here.get("dirty")
    # a third seed: the two kept runs are read back, only seed 2 runs; the figures cover all three
    monkeypatch.setattr(sys, "argv", [*flags, "--seeds", "3"])
    search_efficiency.main()
    assert ran[2:] == [("random", 2)]
    out = capsys.readouterr().out
    assert "2 of 3 kept there, 1 to run" in out and "reached the target on 2 of 3 seeds" in out
    commit = (here.get("commit") or "")[:7] + ("+" if here.get("dirty") else "")
    assert f"runs by the commit they ran at: {commit or 'not recorded'} (3)" in out  # the one run now too
    assert search_report.commits([{"commit": "0123456789", "dirty": True}, {}, {}]) == "not recorded (2), 0123456+ (1)"
    # --summary-only runs nothing
    monkeypatch.setattr(sys, "argv", [*flags, "--seeds", "3", "--summary-only"])
    search_efficiency.main()
    assert len(ran) == 3 and "3 of 3 kept there, 0 to run" in capsys.readouterr().out


def test_a_sweep_the_script_was_stopped_in_runs_again_from_the_start(monkeypatch, capsys, tmp_path):
    # seeds 0 and 1 kept; seed 2's sweep folder was left without its record when the script was stopped
    monkeypatch.setattr(search_efficiency, "start_local_ray", lambda: None)
    monkeypatch.setattr(search_efficiency, "run_method", fake_run)
    flags = ["search_efficiency.py", "--tasks", "lc_weights", "--methods", "random", "--folder", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", [*flags, "--seeds", "2"])
    search_efficiency.main()
    unfinished = tmp_path / "lc_weights" / "random-2"
    unfinished.mkdir()
    (unfinished / "experiment_state.json").write_text("{}")
    seen_then = []
    monkeypatch.setattr(search_efficiency, "run_method",
                        lambda *a: seen_then.append(unfinished.exists()) or fake_run(*a))
    monkeypatch.setattr(sys, "argv", [*flags, "--seeds", "3"])
    search_efficiency.main()
    assert seen_then == [False]  # the sweep CLI would refuse its --name while the folder is there
    out = capsys.readouterr().out
    assert "2 of 3 kept there, 1 to run" in out and "random seed 2: unfinished in an earlier run; running it again" in out
    assert (tmp_path / "lc_weights" / "random-2.json").exists()


def test_a_folder_of_another_protocol_is_refused_before_ray_starts(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(search_efficiency, "start_local_ray", lambda: None)
    monkeypatch.setattr(search_efficiency, "run_method", fake_run)
    flags = ["--tasks", "lc_weights", "--methods", "random", "--seeds", "2", "--folder", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", ["search_efficiency.py", *flags])
    search_efficiency.main()
    capsys.readouterr()
    line = refusal(monkeypatch, capsys, *flags, "--trials", "16")
    assert line.startswith(f"search_efficiency.py: error: --folder: {tmp_path / 'lc_weights' / 'random-0.json'} "
                           "was run with other flags (") and line.endswith("use another folder for these")
    (tmp_path / "lc_weights" / "random-1.json").write_text("{half a rec")
    assert "is not a run's record" in refusal(monkeypatch, capsys, *flags)


def write_tune_trial(sweep, name: str, mode: str, epoch: int, value: float, stop_reason: str = "") -> None:
    """A trial folder as Tune leaves it: result.json, one line per reported epoch (the last counts)."""
    folder = sweep / name
    folder.mkdir(parents=True)
    last = {"epoch": epoch, "val/log_l1": value, "stop_reason": stop_reason, "config": {"caps": {"mode": mode}}}
    (folder / "result.json").write_text(json.dumps({**last, "epoch": 1, "val/log_l1": 9.0}) + "\n" + json.dumps(last))


def test_branch_lines_give_each_methods_share_per_branch_and_where_its_best_lay(tmp_path):
    task = search_tasks.TASKS["hdr_caps"]
    argv = search_runs.method_argv(task, "random", 0, 32, (), str(tmp_path), None)  # 10 epochs
    # random seed 0: A 1.0, B 0.8 -> 1 of 2 in B (50%), best B. Seed 1: A 0.7, B 0.9, B 0.6 stopped
    # unhealthy (not a best) -> 2 of 3 in B (67%), best A. Median B share (50% + 67%) / 2 = 58%.
    # tpe-asha seed 0: A 0.5, A 0.9 stopped by ASHA at epoch 5 (not full length), B 0.7 -> B 33%, best A.
    for name, trials in {"random-0": [("A", 10, 1.0, ""), ("B", 10, 0.8, "")],
                         "random-1": [("A", 10, 0.7, ""), ("B", 10, 0.9, ""), ("B", 10, 0.6, "overflow")],
                         "tpe-asha-0": [("A", 10, 0.5, ""), ("A", 5, 0.9, ""), ("B", 10, 0.7, "")]}.items():
        for k, trial in enumerate(trials):
            write_tune_trial(tmp_path / name, f"run_trial_{k}", *trial)
    runs = [{"method": "random", "seed": 0, "argv": argv}, {"method": "random", "seed": 1, "argv": argv},
            {"method": "tpe-asha", "seed": 0, "argv": argv}]
    lines = search_report.branch_lines(task, runs, str(tmp_path), "val/log_l1", "min")
    mode = lines.index(next(line for line in lines if line.startswith("  branches of caps/mode")))
    assert lines[mode + 1].split() == ["random", "A", "42%", "(33%-50%),", "B", "58%", "(50%-67%);", "best", "in", "A",
                                       "at", "1,", "B", "at", "1", "of", "2", "seeds"]
    assert lines[mode + 2].split()[:7] == ["tpe-asha", "A", "67%", "(67%-67%),", "B", "33%", "(33%-33%);"]
    assert lines[mode + 2].endswith("best in A at 1, B at 0 of 1 seeds")


def test_the_default_is_the_sweeps_first_trial_and_regret_is_normalised_between_it_and_the_best():
    recorder = Recorder("val/loss", "min", full_length=1, budget=9, default_point={"caps/mode": "A", "optim/lr": 1e-3})
    recorder("b", {"epoch": 1, "val/loss": 0.4, "config": {"caps": {"mode": "B"}, "optim": {"lr": 1e-3}}})
    recorder("a", {"epoch": 1, "val/loss": 0.8, "config": {"caps": {"mode": "A"}, "optim": {"lr": 1e-3}}})  # the default
    assert recorder.default == 0.8 and recorder.incumbent == 0.4
    # default 0.8, best known 0.2: an incumbent of 0.4 has (0.4 - 0.2) / (0.8 - 0.2) = 1/3 of the gap left
    assert search_regret.normalised_regret(0.4, 0.8, 0.2) == pytest.approx(1 / 3)
    assert search_regret.normalised_regret(math.nan, 0.8, 0.2) == 1.0  # nothing full-length yet: the default
    # maximised: default 0.5, best 0.9, incumbent 0.8: (0.8 - 0.9) / (0.5 - 0.9) = 0.25
    assert search_regret.normalised_regret(0.8, 0.5, 0.9) == pytest.approx(0.25)
    assert math.isnan(search_regret.normalised_regret(0.3, 0.2, 0.2))  # the default is the best: no gap


def test_the_median_interval_covers_the_median_at_least_95_percent_at_10_seeds_by_simulation():
    import numpy as np

    # at 10 values the 2nd and 9th smallest: coverage 1 - 2 P(Binomial(10, 1/2) <= 1) = 1 - 2 x 11/1024 = 0.9785
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(4000):
        low, high = search_regret.median_interval(rng.exponential(size=10))
        hits += low <= math.log(2) <= high  # the exponential's median
    assert 0.97 <= hits / 4000 <= 0.985
    assert search_regret.median_interval(list(range(10))) == (1.0, 8.0)
    assert all(math.isnan(v) for v in search_regret.median_interval([1.0, 2.0, 3.0]))  # [min, max] covers 75%


def test_regret_at_each_share_of_random_searchs_budget_and_paired_by_seed():
    # random search spent 8 epochs at each seed; its default scored 1.0; the best any run reached is 0.0
    random_runs = [{"method": "random", "seed": s, "default": 1.0,
                    "points": [(e, 0.0, 1.0 if e < 8 else 0.5) for e in range(1, 9)]} for s in range(3)]
    prior = [{"method": "prior-asha", "seed": s, "default": 1.0,
              "points": [(e, 0.0, 0.5 if e < 2 else 0.1 * s) for e in range(1, 9)]} for s in range(3)]
    table = search_regret.regrets(random_runs + prior, best=0.0)
    # at 1/8 (epoch 1): random has only its default so far (1.0), prior 0.5; at all (8): 0.5 and 0.1 s
    assert table["random"][1 / 8] == {0: 1.0, 1: 1.0, 2: 1.0} and table["prior-asha"][1 / 8] == {0: 0.5, 1: 0.5, 2: 0.5}
    assert table["prior-asha"][1.0] == pytest.approx({0: 0.0, 1: 0.1, 2: 0.2})
    paired = search_regret.paired_regret(table["prior-asha"][1.0], table["random"][1.0])
    # differences -0.5, -0.4, -0.3: mean -0.4, lower at 3 of 3; 3 seeds: the exact sign-flip p is 2/8
    assert paired["mean"] == pytest.approx(-0.4) and paired["lower"] == 3 and paired["p"] == pytest.approx(0.25)
    lines = search_regret.regret_lines("task", table)
    assert any(line.startswith("  target: prior-asha at 1/4") for line in lines)
