"""A sweep's plan: what defines the sweep, saved beside its results so that --resume and analyze
need nothing else, and how this run of it executes, which --resume may change. Built and checked
by sweep_flags.make_plan or resume.resumed_plan before Ray starts; read by cluster, tuning and results."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from losstune.ray_jobs.core.storage import join
from losstune.trainables.family_api import DEFAULT_MIN_EFFECT
from losstune.trainables.config import get_path

# --scheduler values whose trials continue each other's checkpoints (ray_jobs/search/schedulers.py)
POPULATION_SCHEDULERS = ("pbt", "pb2")

MIN_FREE_MB = 200.0  # --min-free-mb: what a few checkpoints and Tune's state need to be written whole


UNSAVED = object()  # a definition field every saved sweep holds


def defines(flag: str = "", was=UNSAVED, **default):
    """A field that defines the sweep: saved with it (`metadata`), and --resume refuses `flag` with
    another value; `was`: what sweeps saved before the field existed ran with (None: unknown).
    Adding a sweep-defining flag is this field plus its parser line in cli/sweep_parser."""
    return dataclasses.field(metadata={"defines": True, "flag": flag, "was": was}, **default)


@dataclass(frozen=True)
class SweepPlan:
    # what defines the sweep
    family: str = defines("FAMILY")
    space: str = defines("--space")
    preset: str = defines("--preset")
    base: dict = defines()  # the nested overrides every trial's config is built from; trials add their point
    objective: dict = defines("--objective")  # {"metric", "mode"}: what Tune, ASHA and the report rank by
    objectives: list = defines(was=[])  # two or more {"metric", "mode"}: Optuna searches their Pareto front; [] for one
    default_point: dict = defines()  # the documented default, the first trial
    epochs: int = defines()
    trials: int = defines()
    search: str = defines("--search")  # optuna, optuna-grouped, prior, gp, cmaes or random (random under pbt / pb2)
    scheduler: str = defines("--scheduler")  # asha, hyperband, pbt, pb2 or none
    seed: int = defines("--seed")
    grace_epochs: int | None = defines("--grace-epochs", was=None)
    startup_trials: int = defines("--startup-trials", was=10)
    smoke_test: bool | None = defines("--smoke-test", was=None)
    # how this run executes it
    name: str
    storage: str  # absolute path or URI
    resources: Any  # trainables.engine.driver.TrialResources
    # what defines the sweep, continued
    enqueued: list = defines(was=[], default_factory=list)  # --enqueue: points run after the default
    # --warm-start: {"sweep", "used", "unhealthy", "completed"}: what Optuna got
    warm_start: dict | None = defines(was=None, default=None)
    extensions: list = defines(was=[], default_factory=list)  # Tune runs that added trials (--resume --trials)
    # --population-sync: pbt / pb2 rank every trial at the same epoch
    population_sync: bool = defines("--population-sync", was=False, default=False)
    # --mlflow: the tracking URI ("" the sweep folder's SQLite file; None: off), and --callback
    # MODULE:NAME, Ray Tune callbacks the user brings (ray_jobs/search/tracking.py); an extension logs alike
    mlflow: str | None = defines("--mlflow", was=None, default=None)
    callbacks: list = defines("--callback", was=[], default_factory=list)
    # --search prior's confidence in the default (ray_jobs/search/prior_search.py); TPE's start-up (ray_jobs/search/branch_fair.py)
    prior_confidence: str = defines("--prior-confidence", was="medium", default="medium")
    startup: str = defines("--startup", was="random", default="fair")
    # how this run executes it, continued
    priors: list = dataclasses.field(default_factory=list)  # the warm start's trials, for a fresh study only
    extend_by: int = 0  # --resume --trials N of a finished sweep: the trials this run adds
    storage_arg: str = ""  # --storage as given, for messages and the cluster check
    max_concurrent: int | None = None  # None: as many as the cluster fits (cluster.fit_to_cluster)
    concurrent_now: int | None = None  # of those, what fits the nodes up now (the rest wait for the autoscaler)
    max_failures: int = 1
    keep_checkpoints: int = 2
    resume: bool = False
    verbosity: int = 1
    min_free_mb: float = MIN_FREE_MB
    confirm_top: int = 0  # after the sweep, rerun the default and this many best configs ...
    confirm_seeds: int | str = 0  # ... at this many new training seeds each, or "auto" (ray_jobs/confirmation/runs.py)
    max_seeds: int = 20  # --max-seeds: the most seeds "auto" runs (ray_jobs/confirmation/sequential.py)
    min_effect: str = DEFAULT_MIN_EFFECT  # --min-effect: the smallest difference to the default that a verdict counts

    @property
    def experiment(self) -> str:
        """Where Tune and the results write this sweep."""
        return join(self.storage, self.name)

    def tune_run(self) -> tuple[str, str]:
        """(storage path, name) of the Tune run this plan runs or resumes: the sweep's own, or its
        latest extension, a Tune run of its own inside the sweep's folder (Tune restores a run with
        the trial count it was started with, and Ray adds trials by new runs, not by restore)."""
        return (self.experiment, self.extensions[-1]) if self.extensions else (self.storage, self.name)


# The fields that define a sweep (saved by `metadata`), those added after the first sweeps were
# saved with the value those ran with, and the flag of each that --resume compares
DEFINITION = tuple(f.name for f in dataclasses.fields(SweepPlan) if f.metadata.get("defines"))
LATER_FIELDS = {f.name: f.metadata["was"] for f in dataclasses.fields(SweepPlan)
                if f.metadata.get("defines") and f.metadata["was"] is not UNSAVED}
DEFINING_FLAGS = {f.name: f.metadata["flag"] for f in dataclasses.fields(SweepPlan) if f.metadata.get("flag")}


def metadata(plan: SweepPlan) -> dict:
    """What defines the sweep, with where it lives and its resources, as JSON-ready values."""
    return {k: getattr(plan, k) for k in DEFINITION} | {
        "storage": plan.storage, "name": plan.name, "resources": dataclasses.asdict(plan.resources),
        "confirm": confirm_settings(plan)}


def confirm_settings(plan: SweepPlan) -> dict:
    """How the sweep's own confirmation runs (--confirm-top, --confirm-seeds, --max-seeds,
    --min-effect): saved, so that --resume runs the confirmation the sweep was started with."""
    return {"top": plan.confirm_top, "seeds": plan.confirm_seeds, "max_seeds": plan.max_seeds,
            "min_effect": plan.min_effect}


def definition(meta: dict) -> dict:
    """The defining fields of a saved sweep, with what older sweeps ran with where they lack one."""
    return {k: meta.get(k, LATER_FIELDS[k]) if k in LATER_FIELDS else meta[k] for k in DEFINITION}


def inert_weights(family, config, points: list[dict]) -> str:
    """The tuned loss weights (family.term_switches) whose term is off in every sampled point that
    sets them: off in the base config and not switched on by the point. "" if none."""
    off = {}
    for weight, switch in family.term_switches.items():
        setting = [p for p in points if weight.replace(".", "/") in p]
        if setting and not any(p.get(switch.replace(".", "/"), get_path(config, switch)) for p in setting):
            off.setdefault(switch, []).append(weight)
    return "; ".join(f"{', '.join(weights)} (--set {switch}=true turns them on)" for switch, weights in off.items())


def space_choices(space, key: tuple = ("train", "batch_size")) -> list:
    """The values a dict space's tune.choice at `key` can take (none for other spaces)."""
    node = space
    for part in key:
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return list(getattr(node, "categories", []))


def startup_trials(trials: int) -> int:
    """How many trials TPE samples at random before it models the results. Optuna's default, 10,
    makes a sweep of 8 trials (the demo) random search; a quarter of the trials, 2 to 10, lets a
    short sweep's TPE start from the default and one random point."""
    return min(10, max(2, trials // 4))


def scheduler_overrides(scheduler: str, interval: int) -> dict:
    """What a scheduler needs of each trial's checkpoints: HyperBand pauses a trial at any rung
    and a paused trial resumes from its latest checkpoint (every epoch); PBT exploits a trial's
    checkpoint at each perturbation (every interval)."""
    every = {"hyperband": 1, "pbt": interval, "pb2": interval}.get(scheduler)
    return {"train": {"checkpoint_every": every}} if every else {}
