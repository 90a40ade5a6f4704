"""--seeds auto: the looks, the boundaries, the decisions, and by simulation (fixed seeds) that
stopping when decided keeps a fixed N's error rates and saves seeds on a clear answer."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmarks.verdicts import fixed_n_of_power, sequential
from losstune.ray_jobs.confirmation import conclusion

from losstune.ray_jobs.confirmation.runs import CONFIRM_FILE, Candidate, Interrupted
from losstune.ray_jobs.core.plan import SweepPlan
from losstune.trainables.engine.driver import TrialResources
from losstune.ray_jobs.confirmation.sequential import ALPHA, boundaries, decide, looks, repeated_interval, spent


def test_the_looks_are_3_then_every_2_and_the_maximum():
    assert looks(20) == (3, 5, 7, 9, 11, 13, 15, 17, 19, 20)
    assert looks(7) == (3, 5, 7) and looks(4) == (3, 4) and looks(3) == (3,)


def test_the_spending_function_spends_all_of_alpha_by_the_last_look():
    assert spent(1.0) == pytest.approx(ALPHA) and spent(0.5) < ALPHA / 2  # gamma -2: less early
    assert spent(0.15) == pytest.approx(ALPHA * (1 - math.exp(0.3)) / (1 - math.exp(2.0)))


def test_one_look_is_the_fixed_n_t_test():
    # a single look spends all 2.5% there: its boundary is Student's t quantile (simulated, 200,000 paths)
    assert boundaries((10,))[0] == pytest.approx(stats.t.ppf(1 - ALPHA, 9), abs=0.03)


def test_the_boundaries_fall_to_just_above_the_fixed_n_quantile():
    # what the looks cost: the last boundary at 20 seeds is above t(0.975, 19) = 2.09
    b = boundaries(looks(20))
    assert all(later < earlier for earlier, later in zip(b, b[1:-1]))
    assert stats.t.ppf(1 - ALPHA, 19) < b[-1] < 2.6
    assert boundaries(looks(20), ALPHA / 4)[-1] > b[-1]  # a Holm share of alpha: a higher bar


def test_a_config_better_at_every_seed_by_the_same_amount_is_decided_at_the_first_look():
    # gains all exactly 0.5 against a margin of 0.1: no spread, t infinite, beats at 3 seeds; the other
    # config, differences +-0.05 around 0 (margin 0.1), is a tie that 3 seeds cannot show
    values = {"clear": np.full(20, 0.5), "tie": 1.0 + 0.05 * np.array([1, -1] * 10)}
    decisions = decide(values, np.ones(20), "min", "0.1", looks(20))
    assert decisions["clear"].verdict == "beats" and decisions["clear"].seeds == 3
    assert decisions["tie"].verdict in ("", "equivalent") and decisions["tie"].seeds > 3


def test_an_undecided_config_says_the_last_look_it_reached():
    decisions = decide({"top1": np.array([1.0, 1.2, 0.8, 1.1, 0.9])}, np.ones(5), "min", "0.05", looks(20))
    assert decisions["top1"].verdict == "" and decisions["top1"].seeds == 5


def test_the_repeated_interval_uses_the_boundary():
    # differences 1, 2, 3: mean 2, sd 1, se 0.57735; at a boundary of 4: 2 -+ 2.3094
    assert repeated_interval([1.0, 2.0, 3.0], 4.0) == (pytest.approx(-0.309401, abs=1e-6), pytest.approx(4.309401, abs=1e-6))
    assert repeated_interval([1.0, 2.0, 3.0], math.inf) == (-math.inf, math.inf)


@pytest.mark.parametrize("configs", [1, 4])
def test_false_claims_at_the_margin_stay_at_2_5_percent(configs):
    # every config's true gain exactly on the margin (+1, sd 1): any "beats" is false, and so is any
    # "equivalent"; at -1 any "worse" and "equivalent". 600 repetitions (fixed seed) a case: the 2.5%
    # with room for the simulation's own error (benchmarks/verdicts.py: 2,000 each)
    reps = 600 if configs == 1 else 250
    above, below = sequential(1.0, 1.0, 1.0, reps, configs), sequential(-1.0, 1.0, 1.0, reps, configs)
    assert max(above["beats"], above["equivalent"], below["worse"], below["equivalent"]) <= 0.04


def test_a_clear_win_stops_early_and_saves_seeds_against_a_fixed_n_of_equal_power():
    win = sequential(3.0, 1.0, 1.0, 300)
    assert win["beats"] >= 0.95 and win["mean seeds"] < 9
    assert win["mean seeds"] < fixed_n_of_power(3.0, 1.0, 1.0, win["beats"])


def plan(tmp_path) -> SweepPlan:
    return SweepPlan(family="hdr_patch", space="", preset="", base={}, objective={"metric": "m", "mode": "min"},
                     objectives=[], default_point={}, epochs=1, trials=3, search="none", scheduler="none", seed=0,
                     grace_epochs=None, startup_trials=0, smoke_test=True, name="c", storage=str(tmp_path),
                     max_seeds=9, min_effect="0.1", resources=TrialResources())


def test_rounds_run_the_undecided_configs_until_decided_and_resume_after_a_cut(tmp_path, monkeypatch):
    # made-up runs: "win" is 1.0 better than the default at every seed (decided at 3), "noise" is
    # as good as the default +-0.5 (a margin of 0.1: undecided until the maximum, 9)
    ran, cut = [], {"at": 6}

    def made_up(plan, chosen, seeds, resume=False, folder=None, earlier=None):
        if seeds[0] == cut["at"]:
            raise Interrupted(folder)
        ran.append(([c.config_id for c in chosen], list(seeds)))
        rows = [{"config_id": c.config_id, "sweep_trial": "", "seed": s, "status": "COMPLETED", "stop_reason": "",
                 "objective": {"default": 2.0, "win": 1.0, "noise": 2.0 + 0.5 * (-1) ** s}[c.config_id]}
                for c in chosen for s in seeds]
        table = pd.DataFrame(rows)
        Path(folder).mkdir(parents=True)
        table.to_parquet(Path(folder) / CONFIRM_FILE)  # as the real run does
        return table

    monkeypatch.setattr(conclusion, "run", made_up)
    chosen = [Candidate(name, "", math.nan, {}) for name in ("default", "win", "noise")]
    folder, seeds = str(tmp_path / "confirm_top2_seeds_auto9"), list(range(1, 10))
    with pytest.raises(Interrupted):
        conclusion.run_until_decided(plan(tmp_path), chosen, seeds, folder)
    assert ran == [(["default", "win", "noise"], [1, 2, 3]), (["default", "noise"], [4, 5])]
    cut["at"] = None
    table, decided = conclusion.run_until_decided(plan(tmp_path), chosen, seeds, folder, resume=True)
    # the first two rounds read back, not rerun; then the default and "noise" to 9 seeds
    assert ran[2:] == [(["default", "noise"], [6, 7]), (["default", "noise"], [8, 9])]
    assert decided.decisions["win"].verdict == "beats" and decided.decisions["win"].seeds == 3
    assert decided.decisions["noise"].verdict == "" and decided.decisions["noise"].seeds == 9
    assert "stopped at 9 of up to 9 seeds: 1 config(s) undecided" in decided.stopped
    assert len(pd.read_parquet(f"{folder}/{CONFIRM_FILE}")) == 3 + 9 + 9
