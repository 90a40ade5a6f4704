"""Confirmation over seeds: does a sweep's best really beat the documented default?

A sweep trains each config once, at one seed, and its best is the luckiest of many noisy draws
(the winner's curse). A confirmation reruns the documented default and the sweep's top K healthy
configs (K points of the Pareto front where the sweep has several objectives) at N new training
seeds, the same seeds for every config so that the comparison is paired, through the sweep's own
trial function and epochs, as one Tune run in <sweep>/confirm_top<K>_seeds<N>/. It writes
confirm.parquet there (one row per config and seed); conclusion.py's `conclude` writes the per-config summary
and the printed verdicts (ray_jobs/confirmation/verdicts.py, on the statistics of ray_jobs/confirmation/stats.py).
A config that fails health at a seed is a failure of that config, shown as one. losstune-compare
runs any configs the same way (ray_jobs/compare.py).
"""

from __future__ import annotations

import dataclasses
import math
import os

import pandas as pd

from losstune.ray_jobs.core.usage import AUTO, UsageError
from losstune.ray_jobs.confirmation.stats import margins_of
from losstune.ray_jobs.confirmation.verdicts import Candidate
from losstune.ray_jobs.core.plan import SweepPlan
from losstune.ray_jobs.results.ranking import trial_point
from losstune.ray_jobs.results.tables import trial_status
from losstune.ray_jobs.results.trial_stats import with_cost
from losstune.ray_jobs.core.storage import exists, join, parent_and_name, read_parquet, write_parquet
from losstune.trainables.config import merge, unflatten
from losstune.trainables.registry import load_family

CONFIRM_FILE = "confirm.parquet"
SUMMARY_FILE = "confirm_summary.parquet"  # per config: mean, CI, paired difference, verdict
REPORT_FILE = "confirmation.txt"  # the printed confirmation, for report.html


def folder_name(plan: SweepPlan, top: int, seeds: int | str) -> str:
    """confirm_top<K>_seeds<N> (--seeds auto: confirm_top<K>_seeds_auto<max>); after an extension of
    the sweep, whose best may have changed, confirm_top<K>_seeds<N>_of<trials>."""
    return f"confirm_top{top}_{seeds_part(plan, seeds)}" + (f"_of{plan.trials}" if plan.extensions else "")


def seeds_part(plan: SweepPlan, seeds: int | str) -> str:
    return f"seeds_auto{plan.max_seeds}" if seeds == AUTO else f"seeds{seeds}"


def confirmable(trials: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """The sweep's healthy finished trials besides the default, best first (the trials table's
    order); where the sweep has several objectives, those on the Pareto front."""
    healthy = trials[(trials["status"] == "COMPLETED") & trials["objective"].map(math.isfinite) & ~trials["is_default"]]
    if meta.get("objectives") and "pareto" in trials:
        healthy = healthy[healthy["pareto"]]
    return healthy


def available(trials: pd.DataFrame, meta: dict) -> int:
    return len(confirmable(trials, meta)) if trials["is_default"].any() else 0


def candidates(trials: pd.DataFrame, meta: dict, top: int) -> list[Candidate]:
    """The documented default and the sweep's `top` best confirmable trials; UsageError naming
    --top where the sweep has fewer."""
    defaults = trials[trials["is_default"]]
    if not len(defaults):
        raise UsageError("--top: the sweep has no documented-default trial to confirm against")
    healthy = confirmable(trials, meta)
    if len(healthy) < top:
        raise UsageError(f"--top: the sweep has {len(healthy)} healthy finished trial(s) besides the default, "
                         f"fewer than --top {top}")
    best = [(f"top{k + 1}", row) for k, (_, row) in enumerate(healthy.head(top).iterrows())]
    rows = [("default", defaults.iloc[0]), *best]
    return [Candidate(name, row["trial_id"], float(row["objective"]), trial_point(row)) for name, row in rows]


def seeds_said(auto: bool, seeds: list[int]) -> str:
    """How many seeds a confirmation runs, as its start line says it."""
    return f"3 seeds, then 2 at a time until decided (at most {len(seeds)})" if auto else f"{len(seeds)} seeds"


def check_margin(min_effect: str, default: Candidate) -> None:
    """A percentage of a default whose sweep value is about 0 is no margin: refused before it runs."""
    try:
        margins_of(min_effect, [default.sweep_value])
    except ValueError as err:
        raise UsageError(f"{err} (its value in the sweep)") from None


def seeds_for(meta: dict, n: int) -> list[int]:
    """N training seeds the sweep did not train at (its own seed picked the winners)."""
    swept = int(meta["base"].get("train", {}).get("seed", 0))
    return [swept + 1 + k for k in range(n)]


def planned_runs(chosen: list[Candidate], seeds: list[int]) -> list[tuple[Candidate, int]]:
    return [(candidate, seed) for candidate in chosen for seed in seeds]


class Interrupted(Exception):
    """Ctrl-C during a confirmation: Tune saved its state; no verdict is drawn from cut runs."""


def run(plan: SweepPlan, chosen: list[Candidate], seeds: list[int], resume: bool = False,
        folder: str | None = None, earlier: pd.DataFrame | None = None) -> pd.DataFrame:
    """Run the confirmation (Ray already started, `plan` fitted to the cluster) in `folder` (default
    its confirm_top<K>_seeds<N> folder); with `earlier`, the runs of a confirmation of the same
    configs at fewer seeds, only the seeds it lacks. Returns the per-run table, also written to
    CONFIRM_FILE; Interrupted after a Ctrl-C, with nothing written but Tune's state."""
    # here, not at the top: loads ray only where this runs
    from ray import tune

    from losstune.ray_jobs.core.interrupts import CtrlC
    from losstune.trainables.engine.driver import trainable
    from losstune.trainables.engine.ray_workarounds import no_temporary_files_in_experiment_sync

    no_temporary_files_in_experiment_sync()
    done = set() if earlier is None else set(earlier["seed"])
    runs = planned_runs(chosen, [seed for seed in seeds if seed not in done])
    experiment = folder or join(plan.experiment, folder_name(plan, len(chosen) - 1, len(seeds)))
    fn = trainable(load_family(plan.family), plan.base, plan.resources, join(experiment, "trainer_runs"),
                   runs=[merge(unflatten(c.point), {"train": {"seed": seed}}) for c, seed in runs],
                   max_failures=plan.max_failures, num_to_keep=1)
    if resume and tune.Tuner.can_restore(experiment):
        tuner = tune.Tuner.restore(experiment, trainable=fn, resume_errored=True)
    else:  # no scheduler stops a run, so a finished run's driver actor can start the next (reuse_actors)
        tuner = tune.Tuner(fn, param_space={"run": tune.grid_search(list(range(len(runs))))},
                           run_config=confirmation_run_config(plan, experiment, runs),
                           tune_config=tune.TuneConfig(max_concurrent_trials=plan.max_concurrent, reuse_actors=True))
    with CtrlC() as ctrl_c:
        grid = tuner.fit()
    if ctrl_c.pressed:
        raise Interrupted(experiment)
    table = runs_table(grid, runs, plan)
    if earlier is not None:
        table = pd.concat([earlier, table], ignore_index=True).sort_values(
            ["config_id", "seed"], key=lambda column: column.map(
                {c.config_id: k for k, c in enumerate(chosen)}) if column.name == "config_id" else column,
            ignore_index=True)
    write_parquet(join(experiment, CONFIRM_FILE), table)
    return table


def confirmation_run_config(plan: SweepPlan, experiment: str, runs: list):
    """Tune's JSON and CSV records as in a sweep (its final results are read back from them), the
    trackers, and a lost run restarted from its checkpoint."""
    # here, not at the top: loads ray, mlflow only where this runs
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from losstune.ray_jobs.results.trial_links import BestCheckpoints
    from losstune.ray_jobs.search.tracking import tracking_callbacks
    from losstune.ray_jobs.search.tuning import quiet_forced_snapshots
    from losstune.trainables.engine.driver import trial_files_synced, tune_checkpoints
    from losstune.trainables.engine.tensorboard import SessionEnds

    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # Tune's console that takes our reporter (ray_jobs/search/tuning.py)
    quiet_forced_snapshots()
    storage_path, name = parent_and_name(experiment)
    return tune.RunConfig(name=name, storage_path=storage_path, verbose=min(plan.verbosity, 1),
                          progress_reporter=run_table(plan) if plan.verbosity else None,
                          callbacks=[JsonLoggerCallback(), CSVLoggerCallback(),
                                     BestCheckpoints(plan.name, plan.objective["mode"], plan.storage),
                                     SessionEnds(plan.epochs),
                                     *tracking_callbacks(plan, [(c.config_id, seed, c.point) for c, seed in runs])],
                          failure_config=tune.FailureConfig(max_failures=plan.max_failures),
                          checkpoint_config=tune_checkpoints(plan.objective["mode"], 1),
                          sync_config=trial_files_synced())


def run_table(plan: SweepPlan):
    """The console's table of the runs (their index in the plan's list, epoch and objective), with
    done / total, elapsed and the time left, every 30 s and at the end."""
    # here, not at the top: loads ray only where this runs
    from losstune.ray_jobs.search.progress import TrialTable

    return TrialTable([plan.objective], ["run"], epochs=plan.epochs)


def earlier_confirmation(experiment: str, chosen: list[Candidate], seeds: list[int],
                         name_for) -> tuple[str, pd.DataFrame] | None:
    """The finished confirmation of the same configs at the most seeds M below len(seeds) (its folder
    name_for(M) in `experiment` holds a confirm.parquet), which --resume --seeds N extends; None
    where there is none. UsageError where it confirmed other configs or other seeds."""
    for count in range(len(seeds) - 1, 1, -1):
        name = name_for(count)
        if exists(join(experiment, name, CONFIRM_FILE)):
            break
    else:
        return None
    table = read_parquet(join(experiment, name, CONFIRM_FILE))
    ran = dict(zip(table["config_id"], table["sweep_trial"]))
    wanted = {c.config_id: c.trial_id for c in chosen}
    if ran != wanted:
        raise UsageError(f"--seeds: {experiment}/{name} confirmed other configs ({ran}) than these ({wanted}); "
                         "it cannot be extended")
    if not set(table["seed"]) <= set(seeds):
        raise UsageError(f"--seeds: {experiment}/{name} ran seeds {sorted(set(table['seed']))}, not the first of {seeds}")
    return name, table


def runs_table(grid, runs: list[tuple[Candidate, int]], plan: SweepPlan) -> pd.DataFrame:
    """One row per run: its config, seed, status, objective and final validation metrics."""
    metric = plan.objective["metric"]
    rows = []
    for result in grid:
        candidate, seed = runs[result.config["run"]]
        metrics = result.metrics or {}
        rows.append({"config_id": candidate.config_id, "sweep_trial": candidate.trial_id, "seed": seed,
                     "status": trial_status(metrics, result.error, plan.epochs),
                     "stop_reason": metrics.get("stop_reason") or ("error" if result.error is not None else ""),
                     "objective": metrics.get(metric, math.nan), "epochs_done": int(metrics.get("epoch", 0)),
                     "wall_s": metrics.get("time_total_s", math.nan),
                     **{f"final/{k}": v for k, v in metrics.items() if k.startswith(("val/", "train/", "health/"))}})
    order = {config_id: k for k, config_id in enumerate(dict.fromkeys(c.config_id for c, _ in runs))}
    table = with_cost(pd.DataFrame(rows), dataclasses.asdict(plan.resources))
    return table.sort_values(["config_id", "seed"], key=lambda column: column.map(order) if column.name == "config_id"
                             else column).reset_index(drop=True)
