"""A sweep replayed against a recorded landscape (benchmarks/replay.py) without Ray: the plan the
sweep's own flags make, its searcher (ray_jobs/search/tuning.optuna_searcher: the health-aware
Optuna search with the sweep's sampler, the default first) and its scheduler (the ASHA that keeps
the default, ray_jobs/search/schedulers.py), driven by a small loop in Tune's place.

`replayed` is the same record as a Tune function trainable, and `replay_through_tune` runs a sweep
through Tune itself with it in the family's trainable's place (Ray must be up): the check that
the loop replays what Tune would (tests/benchmarks/test_replay_sweep.py). The protocol uses the
loop: Tune's actors and event loop cost more per result than the lookup they wrap.

The loop runs --max-concurrent trials at a time; each turn every running trial reports its next
recorded epoch, in launch order, as workers of equal speed would. A recorded health stop ends a
trial at its epoch, as the family's check did; ASHA's stop ends it at the scheduler's word. What
Tune adds around this (actors, checkpoints, its own result order on a busy machine) is left out:
that is what makes an epoch a lookup. Searchers and schedulers that pause or exploit trials
(HyperBand, PBT, PB2) are not replayed: NotImplementedError.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from replay import Curve, Landscape  # noqa: E402
from losstune.trainables.config import flatten  # noqa: E402

REPLAYED_SCHEDULERS = ("none", "asha")
# trials at a time where the flags give no --max-concurrent: as the real sweeps of the protocol ran
# on 2 cores (a sweep fits its cluster with Ray up, which a replay never starts)
CONCURRENCY = 2


@dataclass
class ReplayedTrial:
    """What the searcher and ASHA read of a Tune trial."""

    trial_id: str
    config: dict
    curve: Curve
    epoch: int = 0
    last_result: dict = field(default_factory=dict)

    def next_result(self, metric: str) -> dict:
        self.epoch += 1
        last = self.epoch == len(self.curve.objective)
        self.last_result = {"epoch": self.epoch, "training_iteration": self.epoch, "time_total_s": float(self.epoch),
                            metric: self.curve.objective[self.epoch - 1], "config": self.config,
                            "trial_id": self.trial_id, "stop_reason": self.curve.stop_reason if last else ""}
        return self.last_result

    @property
    def finished(self) -> bool:
        return self.epoch >= len(self.curve.objective)


def replay_sweep(argv: list[str], landscape: Landscape, stop=None) -> int:
    """The sweep `argv` (the flags losstune-sweep takes, --storage a scratch folder for its Optuna
    journal) against `landscape`; `stop` a search_runs.Recorder or None. Returns the trials run."""
    # here, not at the top: loads ray, optuna only where this runs
    from ray.tune.schedulers import TrialScheduler

    from losstune.ray_jobs.search import schedulers, tuning

    plan, seed = plan_and_seed(argv)
    if plan.scheduler not in REPLAYED_SCHEDULERS:
        raise NotImplementedError(f"--scheduler {plan.scheduler} pauses or exploits trials; only "
                                  f"{', '.join(REPLAYED_SCHEDULERS)} are replayed")
    space = tuning.plan_space(plan)
    searcher = tuning.optuna_searcher(plan, space)
    scheduler = schedulers.make_scheduler(plan, space)
    metric = plan.objective["metric"]
    if scheduler is not None:
        scheduler.set_search_properties(metric, plan.objective["mode"])
    at_once = plan.max_concurrent or CONCURRENCY
    running, launched = [], 0
    while True:
        while len(running) < at_once and launched < plan.trials:
            trial_id = f"replay_{launched:05d}"
            config = searcher.suggest(trial_id)
            if not isinstance(config, dict):
                break  # the searcher has nothing more to offer
            trial = ReplayedTrial(trial_id, config, landscape.curve(flatten(config), seed))
            if scheduler is not None:
                scheduler.on_trial_add(None, trial)
            running.append(trial)
            launched += 1
        if not running:
            return launched
        for trial in list(running):
            result = trial.next_result(metric)
            decision = scheduler.on_trial_result(None, trial, result) if scheduler else TrialScheduler.CONTINUE
            searcher.on_trial_result(trial.trial_id, result)
            if stop is not None:
                stop(trial.trial_id, result)
            if decision == TrialScheduler.STOP or trial.finished:
                searcher.on_trial_complete(trial.trial_id, result)
                if scheduler is not None:
                    scheduler.on_trial_complete(None, trial, result)
                running.remove(trial)
            if stop is not None and stop.stop_all():
                return launched


def replayed(config: dict, landscape: Landscape, metric: str, seed: int) -> None:
    """A Tune function trainable: `config`'s curve at training seed `seed`, an epoch a report, the
    health stop recorded (or predicted) for it on its last, as the family's trainable reports."""
    from ray import tune

    curve = landscape.curve(flatten(config), seed)
    for epoch, value in enumerate(curve.objective, 1):
        last = epoch == len(curve.objective)
        tune.report({metric: value, "epoch": epoch, "stop_reason": curve.stop_reason if last else ""})


def replay_through_tune(argv: list[str], landscape: Landscape, stop=None) -> int:
    """The sweep `argv` through Tune's own Tuner (ray_jobs/search/tuning.build_tuner), `replayed`
    in the family's trainable's place, on the Ray this process is connected to; `stop` a Tune
    Stopper (search_runs.Recorder) or None. Returns the trials Tune ran."""
    import ray.cloudpickle
    from ray import tune

    from losstune.ray_jobs.search import tuning

    # benchmarks/ is no package a Ray worker can import: the record and this trainable travel by value
    for module in ("replay", "replay_sweep"):
        ray.cloudpickle.register_pickle_by_value(sys.modules[module])
    plan, seed = plan_and_seed(argv)
    trainable = tune.with_parameters(replayed, landscape=landscape, metric=plan.objective["metric"], seed=seed)
    return len(tuning.build_tuner(plan, stop=stop, trainable=trainable).fit())


def plan_and_seed(argv: list[str]):
    """The sweep's plan from its flags, and the training seed its trials run at."""
    from losstune.ray_jobs.cli import sweep_flags

    plan = sweep_flags.make_plan(sweep_flags.parse_args(argv))
    return plan, int(plan.base.get("train", {}).get("seed", 0))
