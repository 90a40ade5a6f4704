"""Running search_efficiency's sweeps and keeping them: the stopper that records each run's anytime
curve (Recorder), the sweep's flags for a method at a seed, and the folder that keeps every
finished sweep's curve with the flags it ran with, so that a later run only runs what is missing."""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field

from ray.tune import Stopper

from common import REPO
from losstune.ray_jobs.core.provenance import git_state
from losstune.ray_jobs.core.usage import UsageError
from losstune.trainables.config import flatten
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family
from search_stats import better
from search_tasks import METHODS, POPULATION, SAMPLER_SEED_OFFSET, STARTUP_TRIALS, Task


@dataclass
class Recorder(Stopper):
    """A Tune Stopper that logs every reported epoch in arrival order, as (epochs spent, trial-slot
    seconds spent, the incumbent's full-length objective after it), and stops the sweep at `budget`
    epochs."""

    metric: str
    mode: str
    full_length: int
    budget: int
    points: list = field(default_factory=list)  # (epochs, slot_s, incumbent)
    slot_s: dict = field(default_factory=dict)  # trial id: its time_total_s so far
    incumbent: float = math.nan
    default_point: dict = field(default_factory=dict)  # {"loss/weights/main": 10.0, ...}: the sweep's first trial
    default: float = math.nan  # its full-length value
    iteration: dict = field(default_factory=dict)  # trial id: the training_iteration last counted

    def __call__(self, trial_id, result) -> bool:
        # Tune hands a stopper a function trainable's last result twice: again, marked done, once the
        # function has returned. It is no epoch spent.
        if result.get("done") and result.get("training_iteration") == self.iteration.get(trial_id):
            return False
        self.iteration[trial_id] = result.get("training_iteration")
        self.slot_s[trial_id] = result.get("time_total_s", 0.0)
        value = result.get(self.metric)
        final = result.get("epoch") == self.full_length and not result.get("stop_reason") and value is not None
        if final and (math.isnan(self.incumbent) or better(value, self.incumbent, self.mode)):
            self.incumbent = float(value)
        if final and self.default_point and is_point(result.get("config", {}), self.default_point):
            self.default = float(value)
        self.points.append((len(self.points) + 1, sum(self.slot_s.values()), self.incumbent))
        return False

    def stop_all(self) -> bool:
        return len(self.points) >= self.budget


def is_point(config: dict, point: dict) -> bool:
    """Whether a trial's nested config holds the flat point's values ("caps/mode": "A")."""
    flat = flatten(config)
    return all(flat.get(key) == value for key, value in point.items())


def task_args(task: Task, seed: int, folder: str, extra) -> list[str]:
    return [task.family, "--space", task.space, *task.flags, *extra, "--set", f"train.seed={seed}",
            "--storage", folder, "--confirm-top", "0", "-q"]


def method_fits(task: Task, method: str) -> str:
    """'' where the method can search the task's space, else why not (losstune-sweep's own checks)."""
    # here, not at the top: loads ray, optuna only where this runs
    from losstune.ray_jobs.cli.sweep_flags import check_population, check_search_fits_space, parse_args

    if method == "prior-wrong-asha":
        return "replayed only (--replay): its prior is the worst config of the task's recorded landscape"
    family = load_family(task.family)
    space = family.space(task.space, make_config(family, {}))
    as_given = parse_args([task.family, "--space", task.space, *METHODS[method]])
    try:
        check_population(as_given, space, task.space)
        check_search_fits_space(as_given.search, space, task.space)
    except UsageError as err:
        return str(err)
    return ""


def method_argv(task: Task, method: str, seed: int, trials: int, extra, folder: str, grace: int | None,
                startup: int = STARTUP_TRIALS) -> list[str]:
    """losstune-sweep's flags for one sweep of `method` at `seed`: random search's `trials`, PBT's
    and PB2's population of `trials`, more than the budget affords for the others (it stops them)."""
    asked = trials if method in ("random", *POPULATION) else 4 * trials
    flags = [*METHODS[method], "--trials", str(asked), "--seed", str(seed if method == "random" else
                                                                     SAMPLER_SEED_OFFSET + seed)]
    if method != "random":
        flags += ["--grace-epochs", str(grace)] if grace else []
    if method not in ("random", *POPULATION) and "--startup-trials" not in flags:
        flags += ["--startup-trials", str(startup)]
    return task_args(task, seed, folder, extra) + flags + ["--name", sweep_name(method, seed)]


def task_config(task: Task, argv: list[str]):
    """The config every trial of the sweep `argv` starts from (before the searched values)."""
    # here, not at the top: loads ray, optuna only where this runs
    from losstune.ray_jobs.cli import sweep_flags

    family = load_family(task.family)
    return make_config(family, sweep_flags.base_overrides(family, sweep_flags.parse_args(argv)))


def full_length(task: Task, argv: list[str]) -> int:
    """The epochs of a full-length trial of the sweep `argv`."""
    return task_config(task, argv).train.epochs


def identity(argv: list[str]) -> list[str]:
    """The flags a kept run is compared by: not where its sweep was stored, and not a population's
    size, which follows from random search's kept run at that seed (compared itself)."""
    argv = list(argv)
    population = argv[argv.index("--scheduler") + 1] in POPULATION
    for flag in ("--storage", "--trials") if population else ("--storage",):
        at = argv.index(flag)
        del argv[at:at + 2]
    return argv


def recorded(path: str, argv: list[str]) -> dict | None:
    """The run kept at `path`, None where there is none; a run made with other flags is refused, so a
    folder never mixes two protocols (checked for every run before Ray starts)."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            run = json.load(f)
    except ValueError as err:
        raise ValueError(f"--folder: {path} is not a run's record ({err}); move it away to run that sweep again")
    if run.get("argv") != identity(argv):
        raise ValueError(f"--folder: {path} was run with other flags ({' '.join(run.get('argv') or [])}); "
                         "use another folder for these")
    return run


def keep(path: str, run: dict, argv: list[str]) -> dict:
    """Writes the run's record whole or not at all (an interrupted write leaves no half record),
    with the commit it ran at: a change to a searcher changes its runs without changing a flag.
    Returns the record."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    record = {**run, "argv": identity(argv), **git_state(REPO)}
    with open(f"{path}.part", "w") as f:
        json.dump(record, f)
    os.replace(f"{path}.part", path)
    return record


def sweep_name(method: str, seed: int) -> str:
    """The sweep's --name, its folder under the task's, and (with .json) its kept record's name."""
    return f"{method}-{seed}"


def run_path(folder: str, name: str, method: str, seed: int) -> str:
    return os.path.join(folder, name, f"{sweep_name(method, seed)}.json")


def discard_unfinished(folder: str, name: str, method: str, seed: int) -> None:
    """A sweep's folder without its record is one this script was stopped in. Its curve went with
    the process, and the sweep CLI refuses an existing --name, so it runs again from the start
    (resuming it would not give the anytime curve of one uninterrupted sweep)."""
    sweep = os.path.join(folder, name, sweep_name(method, seed))
    if os.path.isdir(sweep):
        print(f"  {name} {method} seed {seed}: unfinished in an earlier run; running it again from the start",
              flush=True)
        shutil.rmtree(sweep)


def run_trials(task: Task, run: dict, folder: str, metric: str) -> list[tuple[dict, float | None]]:
    """Each trial of a kept run's Tune folder that reported: its flat config ("caps/mode": "B") and
    its final value where it ran every epoch healthy, else None. Read from each trial's last result."""
    sweep = os.path.join(folder, sweep_name(run["method"], run["seed"]))
    epochs = full_length(task, run["argv"])
    trials = []
    for trial in sorted(os.listdir(sweep)) if os.path.isdir(sweep) else []:
        path = os.path.join(sweep, trial, "result.json")
        lines = open(path).read().splitlines() if os.path.exists(path) else []
        if lines:
            last = json.loads(lines[-1])
            full = last.get("epoch") == epochs and not last.get("stop_reason")
            trials.append((flatten(last["config"]), last[metric] if full else None))
    return trials
