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
import os
from dataclasses import dataclass

import pandas as pd

from losstune.ray_jobs import confirm_stats
from losstune.ray_jobs.flags import UsageError
from losstune.ray_jobs.plan import SweepPlan
from losstune.ray_jobs.results import cost_line, trial_point, trial_status, with_cost
from losstune.ray_jobs.storage import exists, read_parquet, write_bytes, write_parquet
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


class Interrupted(Exception):
    """Ctrl-C during a confirmation: Tune saved its state; no verdict is drawn from cut runs."""


def run(plan: SweepPlan, chosen: list[Candidate], seeds: list[int], resume: bool = False,
        folder: str | None = None, earlier: pd.DataFrame | None = None) -> pd.DataFrame:
    """Run the confirmation (Ray already started, `plan` fitted to the cluster) in `folder` (default
    its confirm_top<K>_seeds<N> folder); with `earlier`, the runs of a confirmation of the same
    configs at fewer seeds, only the seeds it lacks. Returns the per-run table, also written to
    CONFIRM_FILE; Interrupted after a Ctrl-C, with nothing written but Tune's state."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from losstune.ray_jobs.tuning import CtrlC
    from losstune.trainables.driver import trainable
    from losstune.trainables.families import load_family

    done = set() if earlier is None else set(earlier["seed"])
    runs = planned_runs(chosen, [seed for seed in seeds if seed not in done])
    name = os.path.basename(folder) if folder else folder_name(plan, len(chosen) - 1, len(seeds))
    experiment = f"{plan.experiment}/{name}"
    fn = trainable(load_family(plan.family), plan.base, plan.resources, f"{experiment}/trainer_runs",
                   runs=[merge(unflatten(c.point), {"train": {"seed": seed}}) for c, seed in runs],
                   max_failures=plan.max_failures, num_to_keep=1)
    if resume and tune.Tuner.can_restore(experiment):
        tuner = tune.Tuner.restore(experiment, trainable=fn, resume_errored=True)
    else:
        # no scheduler stops a run, so a finished run's driver actor can start the next (reuse_actors);
        # Tune's JSON and CSV records as in a sweep, where its final results are read back from
        run_config = tune.RunConfig(name=name, storage_path=plan.experiment, verbose=1 if plan.verbosity >= 2 else 0,
                                    callbacks=[JsonLoggerCallback(), CSVLoggerCallback()],
                                    failure_config=tune.FailureConfig(max_failures=plan.max_failures))
        tuner = tune.Tuner(fn, param_space={"run": tune.grid_search(list(range(len(runs))))}, run_config=run_config,
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
    write_parquet(f"{experiment}/{CONFIRM_FILE}", table)
    return table


def earlier_confirmation(experiment: str, chosen: list[Candidate], seeds: list[int],
                         name_for) -> tuple[str, pd.DataFrame] | None:
    """The finished confirmation of the same configs at the most seeds M below len(seeds) (its folder
    name_for(M) in `experiment` holds a confirm.parquet), which --resume --seeds N extends; None
    where there is none. UsageError where it confirmed other configs or other seeds."""
    for count in range(len(seeds) - 1, 1, -1):
        name = name_for(count)
        if exists(f"{experiment}/{name}/{CONFIRM_FILE}"):
            break
    else:
        return None
    table = read_parquet(f"{experiment}/{name}/{CONFIRM_FILE}")
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


def summary(table: pd.DataFrame, chosen: list[Candidate], mode: str, others: list[dict] = (),
            min_effect: str = confirm_stats.DEFAULT_MIN_EFFECT) -> pd.DataFrame:
    """Per config: seeds, failures, mean, sd, 95% t interval, and against the default paired by seed
    (confirm_stats): the difference and its interval, the sign pattern, the exact p-value and the
    verdict against `min_effect`, Holm-corrected over the configs. With `others` (a multi-objective
    sweep's further objectives), each one's paired difference and verdict too (diff/<metric>, ...)."""
    healthy = table[(table["status"] == "COMPLETED") & table["objective"].map(math.isfinite)]
    values = {c.config_id: healthy[healthy["config_id"] == c.config_id].set_index("seed")["objective"] for c in chosen}
    reference = chosen[0].config_id  # the documented default in a confirmation, the first config in a comparison
    default = values[reference]
    compared = chosen[1:]
    pairs = {c.config_id: values[c.config_id].index.intersection(default.index) for c in compared}
    comparisons = dict(zip(pairs, confirm_stats.judge([
        confirm_stats.compare(values[name][seeds].to_numpy(), default[seeds].to_numpy(), mode, min_effect)
        for name, seeds in pairs.items()])))
    further = {c.config_id: {} for c in compared}
    against = reference_name(reference)
    for objective in others:
        for name, row in other_objective(healthy, pairs, objective, min_effect, reference).items():
            further[name] |= row
    rows, reference_failed = [], ""
    for c in chosen:
        ran = table[table["config_id"] == c.config_id]
        failed = ran[~ran["seed"].isin(values[c.config_id].index)]  # errored, stopped unhealthy or cut short
        reasons = ", ".join(sorted(set(failed["stop_reason"].replace("", "cut short"))))
        spread = confirm_stats.spread(values[c.config_id].to_numpy())
        row = {"config_id": c.config_id, "sweep_trial": c.trial_id, "sweep_value": c.sweep_value, "seeds": len(ran),
               "failed": len(failed), "mean": spread.mean, "sd": spread.sd, "ci_low": spread.ci_low,
               "ci_high": spread.ci_high, "setting": setting(c, chosen[0]), "reference": reference}
        if c.config_id != reference:
            row |= comparison_columns(comparisons[c.config_id], default[pairs[c.config_id]].mean(), against)
            row |= further[c.config_id]
            if len(failed):
                row["verdict"] = "not confirmed"
                row["conclusion"] = f"failed at {len(failed)} of {len(ran)} seeds ({reasons}): not confirmed"
            row["conclusion"] += reference_failed
        elif len(failed):  # the comparisons stand on the seeds where both ended healthy: say so
            reference_failed = (f" ({against} failed at {len(failed)} of {len(ran)} seeds ({reasons}); compared at "
                                "the seeds where both ended healthy)")
        rows.append(row)
    return pd.DataFrame(rows)


def reference_name(config_id: str) -> str:
    return "the default" if config_id == "default" else config_id


def comparison_columns(c: confirm_stats.Comparison, default_mean: float, against: str) -> dict:
    """A compared config's columns in confirm_summary.parquet."""
    return {"pairs": c.pairs, "default_mean": default_mean, "diff": c.diff, "relative": c.relative,
            "diff_low": c.ci_low, "diff_high": c.ci_high, "interval": confirm_stats.INTERVAL, "better": c.better,
            "p_value": c.p_value, "min_effect": c.min_effect, "p_verdict": c.p_verdict,
            "corrected_over": c.corrected_over, "seeds_needed": c.seeds_needed or math.nan, "verdict": c.verdict,
            "conclusion": confirm_stats.verdict_phrase(c, against)}


def setting(candidate: Candidate, default: Candidate) -> str:
    """What a config sets differently from the default, e.g. "caps/mode=B, caps/log_delta_scale=0.32"."""
    changed = {k: v for k, v in candidate.point.items() if default.point.get(k, object()) != v}
    shown = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in changed.items()]
    return ", ".join(shown) if shown else "the reference's values"


def other_objective(healthy: pd.DataFrame, pairs: dict, objective: dict, min_effect: str, reference: str) -> dict:
    """Each config's paired difference to the default in a further objective, at the seeds where
    both ended healthy: a point of the Pareto front may trade one objective for another."""
    column, metric = f"final/{objective['metric']}", objective["metric"]
    default = healthy[healthy["config_id"] == reference].set_index("seed")[column].dropna()
    both, comparisons = {}, []
    for name, seeds in pairs.items():
        own = healthy[healthy["config_id"] == name].set_index("seed")[column].dropna()
        both[name] = [seed for seed in seeds if seed in own.index and seed in default.index]
        comparisons.append(confirm_stats.compare(own[both[name]].to_numpy(), default[both[name]].to_numpy(),
                                                 objective["mode"], min_effect))
    return {name: {f"diff/{metric}": c.diff, f"diff_low/{metric}": c.ci_low, f"diff_high/{metric}": c.ci_high,
                   f"verdict/{metric}": confirm_stats.verdict_phrase(c, reference_name(reference))}
            for name, c in zip(pairs, confirm_stats.judge(comparisons))}


def further_objectives(plan: SweepPlan) -> list[dict]:
    """The objectives of a multi-objective sweep besides the scalar one its confirmation ranks by."""
    return [o for o in plan.objectives if o["metric"] != plan.objective["metric"]]


def conclude(plan: SweepPlan, chosen: list[Candidate], seeds: list[int], table: pd.DataFrame,
             folder: str | None = None) -> str:
    """The summary and the printed confirmation of a finished run, written beside its
    confirm.parquet (in `folder`, default the confirmation's own); returns the printed text."""
    confirmed = summary(table, chosen, plan.objective["mode"], further_objectives(plan), plan.min_effect)
    text = report(confirmed, plan, seeds, table)
    folder = folder or f"{plan.experiment}/{folder_name(plan, len(chosen) - 1, len(seeds))}"
    write_parquet(f"{folder}/{SUMMARY_FILE}", confirmed.assign(min_effect_arg=plan.min_effect))
    write_bytes(f"{folder}/{REPORT_FILE}", text.encode())
    return text


def answer(row, metric: str) -> str:
    """One compared config in a sentence: its setting, both means, the difference with its interval,
    the sign pattern, the exact p-value and the verdict."""
    head = f"{row.config_id} ({row.setting})"
    if row.verdict == "not confirmed" or not row.pairs:
        return f"{head}: {row.conclusion}"
    return (f"{head}: {metric} {row.default_mean + row.diff:.4g} vs {reference_name(row.reference)}'s "
            f"{row.default_mean:.4g}, "
            f"{row.diff:+.3g} ({row.relative:+.1%}), 95% CI [{row.diff_low:+.3g}, {row.diff_high:+.3g}], "
            f"better at {int(row.better)} of {int(row.pairs)} seeds, p = {row.p_value:.2g}: {row.conclusion}")


def method_line(confirmed: pd.DataFrame, plan: SweepPlan) -> str:
    compared = confirmed.iloc[1:]
    corrected = (f"verdicts Holm-corrected over the {len(compared)} configs" if len(compared) > 1
                 else "one config: no multiplicity correction needed")
    delta = compared["min_effect"].dropna()
    size = f"{delta.iloc[0]:.3g}" if len(delta) else "n/a"
    return (f"  how to read it: 95% {confirm_stats.INTERVAL} intervals of the difference, paired by seed; p is the "
            f"exact sign-flip test of no difference (at 3 seeds never below 0.25); a verdict needs the interval "
            f"beyond the minimum effect {size} (--min-effect {plan.min_effect}); {corrected}")


def report(confirmed: pd.DataFrame, plan: SweepPlan, seeds: list[int], table: pd.DataFrame | None = None) -> str:
    """The printed confirmation: a line per config with its mean and spread, how well the sweep
    ranked them and the cost, then the answer: one sentence per config against the default."""
    metric, mode = plan.objective["metric"], plan.objective["mode"]
    better = "lower" if mode == "min" else "higher"
    reference = confirmed["config_id"].iloc[0]
    first = "the documented default" if reference == "default" else f"{reference} (the reference)"
    lines = [f"confirmation: {first} and {len(confirmed) - 1} config(s) at training seeds "
             f"{', '.join(map(str, seeds))} ({plan.epochs} epochs each); {metric}, {better} is better"]
    for row in confirmed.itertuples():
        sweep = f"trial {row.sweep_trial}, sweep {row.sweep_value:.4g} at one seed" if row.sweep_trial else "given"
        head = (f"  {row.config_id:>8} ({sweep}): mean {row.mean:.4g} sd {row.sd:.2g} 95% CI [{row.ci_low:.4g}, "
                f"{row.ci_high:.4g}] over {row.seeds - row.failed} of {row.seeds} seeds")
        if row.config_id == reference and row.failed:
            head += f"; {reference_name(reference)} failed at {row.failed} seed(s)"
        lines.append(head)
        for objective in ([] if row.config_id == reference else further_objectives(plan)):
            name = objective["metric"]
            values = confirmed.loc[confirmed["config_id"] == row.config_id].iloc[0]
            lines.append(f"{'':>12}{name} vs default {values[f'diff/{name}']:+.4g} "
                         f"[{values[f'diff_low/{name}']:+.4g}, {values[f'diff_high/{name}']:+.4g}]: "
                         f"{values[f'verdict/{name}']}")
    tops = confirmed[(confirmed["config_id"] != reference) & confirmed["mean"].map(math.isfinite)]
    agreement = confirm_stats.rank_agreement(tops["sweep_value"].to_numpy(), tops["mean"].to_numpy())
    if not math.isnan(agreement):
        lines.append(f"  rank agreement of the sweep's order with the confirmed means (Spearman, {len(tops)} configs): "
                     f"{agreement:.2f}")
    if table is not None and "cpu_s" in table:
        lines.append("  " + cost_line(table, "runs"))
    lines.append(method_line(confirmed, plan))
    lines.append("answer:")
    lines += [f"  {answer(row, metric)}" for row in confirmed.iloc[1:].itertuples()]
    return "\n".join(lines)
