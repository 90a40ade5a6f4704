"""TPE's branch-fair start-up (ray_jobs/search/branch_fair.py)."""

from collections import Counter

import optuna

from losstune.ray_jobs.search.branch_fair import BranchFairTPESampler
from losstune.search_spaces import default_point
from losstune.trainables.registry import load_family
from losstune.trainables.family_api import make_config

optuna.logging.set_verbosity(optuna.logging.WARNING)


def started(sampler, trials: int):
    """A study of hdr_patch's `all` space (cap mode A with its scale choices, or mode B), the
    default first, `trials` trials told 1.0 each."""
    family = load_family("hdr_patch")
    config = make_config(family)
    space = family.space("all", config)
    study = optuna.create_study(sampler=sampler)
    study.enqueue_trial(default_point(space, config))
    for _ in range(trials):
        trial = study.ask()
        space(trial)
        study.tell(trial, 1.0)
    return study


def test_the_start_up_spreads_every_choice_evenly_over_its_branches():
    # the default is mode A without a learnable scale; 8 start-up trials after it: each choice's
    # values are taken in turn, so mode B gets 5 of the 9, and within mode A the learnable scale's
    # two values 2 each, and so on down the branches
    for seed in range(3):
        study = started(BranchFairTPESampler(n_startup_trials=8, seed=seed), 9)
        trials = study.trials
        for name in ("caps/mode", "model/learnable_scale", "caps/clamp_enabled", "model/output_norm"):
            counts = Counter(t.params[name] for t in trials if name in t.params)
            assert max(counts.values()) - min(counts.values()) <= 1 and len(counts) == 2, (seed, name, counts)


def test_past_the_start_up_tpe_models_the_results_as_optunas(monkeypatch):
    from losstune.ray_jobs.search import branch_fair

    study = started(BranchFairTPESampler(n_startup_trials=2, seed=0), 2)  # the default and 2: start-up over
    assert not study.sampler.starting(study)
    monkeypatch.setattr(branch_fair, "least_taken", lambda *args: (_ for _ in ()).throw(AssertionError("fair draw")))
    family = load_family("hdr_patch")
    trial = study.ask()
    family.space("all", make_config(family))(trial)  # TPE's own choices: the fair draw is not asked
    assert "caps/mode" in trial.params
