"""Confirmation over seeds: does a sweep's best really beat the documented default?

A sweep trains each config once, at one seed, and its best is the luckiest of many noisy draws
(the winner's curse). A confirmation reruns the documented default and the sweep's top K healthy
configs (K points of the Pareto front where the sweep has several objectives) at N new training
seeds, the same seeds for every config so that the comparison is paired, through the sweep's own
trial function and epochs, as one Tune run in <sweep>/confirm_top<K>_seeds<N>/. It writes
confirm.parquet there (one row per config and seed) and returns the per-config summary
(confirm_stats). A config that fails health at a seed is a failure of that config, shown as one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pandas as pd

from losstune.ray_jobs import confirm_stats
from losstune.ray_jobs.flags import UsageError
from losstune.ray_jobs.plan import SweepPlan
from losstune.ray_jobs.results import cost_line, trial_point, trial_status, with_cost
from losstune.ray_jobs.storage import exists, write_bytes, write_parquet
from losstune.trainables.config import merge, unflatten

CONFIRM_FILE = "confirm.parquet"
SUMMARY_FILE = "confirm_summary.parquet"  # per config: mean, CI, paired difference, verdict
REPORT_FILE = "confirmation.txt"  # the printed confirmation, for report.html


@dataclass(frozen=True)
class Candidate:
    config_id: str  # "default", "top1", "top2", ...
    trial_id: str  # the sweep's trial it comes from
    sweep_value: float  # its objective in the sweep
    point: dict  # the flat parameters it sampled


def folder_name(plan: SweepPlan, top: int, seeds: int) -> str:
    """confirm_top<K>_seeds<N>; after an extension of the sweep, whose best may have changed,
    confirm_top<K>_seeds<N>_of<trials>."""
    return f"confirm_top{top}_seeds{seeds}" + (f"_of{plan.trials}" if plan.extensions else "")


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


def seeds_for(meta: dict, n: int) -> list[int]:
    """N training seeds the sweep did not train at (its own seed picked the winners)."""
    swept = int(meta["base"].get("train", {}).get("seed", 0))
    return [swept + 1 + k for k in range(n)]


def planned_runs(chosen: list[Candidate], seeds: list[int]) -> list[tuple[Candidate, int]]:
    return [(candidate, seed) for candidate in chosen for seed in seeds]


def run(plan: SweepPlan, chosen: list[Candidate], seeds: list[int], resume: bool = False) -> pd.DataFrame:
    """Run the confirmation (Ray already started, `plan` fitted to the cluster); returns the
    per-run table, also written to CONFIRM_FILE."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from losstune.trainables.driver import trainable
    from losstune.trainables.families import load_family

    runs = planned_runs(chosen, seeds)
    name = folder_name(plan, len(chosen) - 1, len(seeds))
    experiment = f"{plan.experiment}/{name}"
    fn = trainable(load_family(plan.family), plan.base, plan.resources, f"{experiment}/trainer_runs",
                   runs=[merge(unflatten(c.point), {"train": {"seed": seed}}) for c, seed in runs],
                   max_failures=plan.max_failures, num_to_keep=1)
    if resume and exists(experiment):
        tuner = tune.Tuner.restore(experiment, trainable=fn, resume_errored=True)
    else:
        # no scheduler stops a run, so a finished run's driver actor can start the next (reuse_actors);
        # Tune's JSON and CSV records as in a sweep, where its final results are read back from
        run_config = tune.RunConfig(name=name, storage_path=plan.experiment, verbose=1 if plan.verbosity >= 2 else 0,
                                    callbacks=[JsonLoggerCallback(), CSVLoggerCallback()],
                                    failure_config=tune.FailureConfig(max_failures=plan.max_failures))
        tuner = tune.Tuner(fn, param_space={"run": tune.grid_search(list(range(len(runs))))}, run_config=run_config,
                           tune_config=tune.TuneConfig(max_concurrent_trials=plan.max_concurrent, reuse_actors=True))
    table = runs_table(tuner.fit(), runs, plan)
    write_parquet(f"{experiment}/{CONFIRM_FILE}", table)
    return table


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
                     **{f"final/{k}": v for k, v in metrics.items() if k.startswith("val/")}})
    order = {config_id: k for k, config_id in enumerate(dict.fromkeys(c.config_id for c, _ in runs))}
    table = with_cost(pd.DataFrame(rows), dataclasses.asdict(plan.resources))
    return table.sort_values(["config_id", "seed"], key=lambda column: column.map(order) if column.name == "config_id"
                             else column).reset_index(drop=True)


def summary(table: pd.DataFrame, chosen: list[Candidate], mode: str, others: list[dict] = ()) -> pd.DataFrame:
    """Per config: seeds, failures, mean, sd, 95% CI, and against the default paired by seed; with
    `others` (a multi-objective sweep's objectives besides the scalar one), each one's paired
    difference and verdict too (diff/<metric>, verdict/<metric>)."""
    healthy = table[(table["status"] == "COMPLETED") & table["objective"].map(math.isfinite)]
    values = {c.config_id: healthy[healthy["config_id"] == c.config_id].set_index("seed")["objective"] for c in chosen}
    default = values["default"]
    rows = []
    for c in chosen:
        own = values[c.config_id]
        ran = table[table["config_id"] == c.config_id]
        failed = ran[~ran["seed"].isin(own.index)]  # errored, stopped unhealthy or cut short
        spread = confirm_stats.spread(own.to_numpy())
        row = {"config_id": c.config_id, "sweep_trial": c.trial_id, "sweep_value": c.sweep_value, "seeds": len(ran),
               "failed": len(failed), "mean": spread.mean, "sd": spread.sd, "ci_low": spread.ci_low,
               "ci_high": spread.ci_high}
        if c.config_id != "default":
            paired = own.index.intersection(default.index)
            comparison = confirm_stats.compare(own[paired].to_numpy(), default[paired].to_numpy(), mode)
            row.update(pairs=comparison.pairs, diff=comparison.diff, diff_low=comparison.ci_low,
                       diff_high=comparison.ci_high, p_better=comparison.p_better, verdict=comparison.verdict)
            row.update(other_objectives(healthy, c.config_id, paired, others))
            if len(failed):
                reasons = ", ".join(sorted(set(failed["stop_reason"].replace("", "cut short"))))
                row["verdict"] = f"failed at {len(failed)} of {len(ran)} seeds ({reasons}): not confirmed"
        rows.append(row)
    return pd.DataFrame(rows)


def other_objectives(healthy: pd.DataFrame, config_id: str, seeds, others: list[dict]) -> dict:
    """A config's paired difference to the default in each further objective, at the seeds where
    both ended healthy: a point of the Pareto front may trade one objective for another."""
    row = {}
    for objective in others:
        column = f"final/{objective['metric']}"
        values = {name: healthy[healthy["config_id"] == name].set_index("seed")[column] for name in (config_id, "default")}
        both = [seed for seed in seeds if seed in values[config_id].dropna().index and seed in values["default"].dropna().index]
        comparison = confirm_stats.compare(values[config_id][both].to_numpy(), values["default"][both].to_numpy(),
                                           objective["mode"])
        row |= {f"diff/{objective['metric']}": comparison.diff, f"diff_low/{objective['metric']}": comparison.ci_low,
                f"diff_high/{objective['metric']}": comparison.ci_high, f"verdict/{objective['metric']}": comparison.verdict}
    return row


def further_objectives(plan: SweepPlan) -> list[dict]:
    """The objectives of a multi-objective sweep besides the scalar one its confirmation ranks by."""
    return [o for o in plan.objectives if o["metric"] != plan.objective["metric"]]


def conclude(plan: SweepPlan, chosen: list[Candidate], seeds: list[int], table: pd.DataFrame) -> str:
    """The summary and the printed confirmation of a finished run, written beside its
    confirm.parquet; returns the printed text."""
    confirmed = summary(table, chosen, plan.objective["mode"], further_objectives(plan))
    text = report(confirmed, plan, seeds, table)
    folder = f"{plan.experiment}/{folder_name(plan, len(chosen) - 1, len(seeds))}"
    write_parquet(f"{folder}/{SUMMARY_FILE}", confirmed)
    write_bytes(f"{folder}/{REPORT_FILE}", text.encode())
    return text


def report(confirmed: pd.DataFrame, plan: SweepPlan, seeds: list[int], table: pd.DataFrame | None = None) -> str:
    """The printed confirmation: a line per config, its verdict, and how well the sweep ranked them."""
    metric, mode = plan.objective["metric"], plan.objective["mode"]
    better = "lower" if mode == "min" else "higher"
    lines = [f"confirmation: the documented default and the sweep's top {len(confirmed) - 1} at training seeds "
             f"{', '.join(map(str, seeds))} ({plan.epochs} epochs each); {metric}, {better} is better; 95% bootstrap "
             "intervals; differences paired by seed"]
    for row in confirmed.itertuples():
        head = (f"  {row.config_id:>8} (trial {row.sweep_trial}, sweep {row.sweep_value:.4g}): mean {row.mean:.4g} "
                f"sd {row.sd:.2g} [{row.ci_low:.4g}, {row.ci_high:.4g}] over {row.seeds - row.failed} of "
                f"{row.seeds} seeds")
        if row.config_id == "default":
            lines.append(head + ("" if not row.failed else f"; the default failed at {row.failed} seed(s)"))
            continue
        lines.append(head + f"; vs default {row.diff:+.4g} [{row.diff_low:+.4g}, {row.diff_high:+.4g}], "
                            f"P(better) {row.p_better:.2f}: {row.verdict}")
        for objective in further_objectives(plan):
            metric_name = objective["metric"]
            values = confirmed.loc[confirmed["config_id"] == row.config_id].iloc[0]
            lines.append(f"{'':>12}{metric_name} vs default {values[f'diff/{metric_name}']:+.4g} "
                         f"[{values[f'diff_low/{metric_name}']:+.4g}, {values[f'diff_high/{metric_name}']:+.4g}]: "
                         f"{values[f'verdict/{metric_name}']}")
    tops = confirmed[(confirmed["config_id"] != "default") & confirmed["mean"].map(math.isfinite)]
    agreement = confirm_stats.rank_agreement(tops["sweep_value"].to_numpy(), tops["mean"].to_numpy())
    if not math.isnan(agreement):
        lines.append(f"  rank agreement of the sweep's order with the confirmed means (Spearman, {len(tops)} configs): "
                     f"{agreement:.2f}")
    if table is not None and "cpu_s" in table:
        lines.append("  " + cost_line(table, "runs"))
    return "\n".join(lines)
