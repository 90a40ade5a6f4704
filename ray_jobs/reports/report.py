"""The printed summary of a sweep: its top trials against the documented default, ranked at a
common budget, with the Pareto front where the sweep has several objectives and the files written."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from losstune.ray_jobs.core import provenance
from losstune.ray_jobs.results import study
from losstune.ray_jobs.results.plots import better
from losstune.ray_jobs.results.ranking import best_trial
from losstune.ray_jobs.results.trial_stats import MIN_RANKED, RANKS_LIKE_FINAL, cost_line, early_ranking
from losstune.ray_jobs.core.storage import read_parquet

def report(trials: pd.DataFrame, meta: dict, written: dict, top: int = 10, history: pd.DataFrame | None = None) -> str:
    """The printed summary: the top trials against the documented default; with `history`, how
    early epochs rank the trials (what ASHA's first stop relies on)."""
    metric = meta["objective"]["metric"]
    if not len(trials):
        return "no trials finished"
    shown = trials.head(top)
    default_rows = trials[trials["is_default"]]
    if len(default_rows) and not shown["is_default"].any():
        shown = pd.concat([shown, default_rows])
    params = [c for c in trials.columns if c.startswith("config/")]
    extra = [c for c in trials.columns if c.startswith("final/val/") and c != f"final/{metric}"][:3]
    table = shown[["trial_id", "status", "stop_reason", "epochs_done", "objective"] + extra + params].copy()
    table.insert(0, "", ["*" if d else "" for d in shown["is_default"]])
    table.columns = [{"epochs_done": "at_epoch"}.get(c, c.replace("config/", "").replace("final/", ""))
                     for c in table.columns]
    smoke = " (smoke test: tiny data and model, a check that it runs, not a result)" if meta.get("smoke_test") else ""
    lines = [f"{meta['family']} / space '{meta['space']}'{smoke}: {len(trials)} trials, objective {metric} "
             f"({better(meta['objective']['mode'])} is better; its value at_epoch; trials that ran every epoch "
             "rank first); * = documented default",
             # a parameter a trial's branch lacks is blank, whether pandas holds it as None or NaN
             table.fillna(value=math.nan).to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="")]
    best = best_trial(trials)
    if best is not None:
        lines.append(f"best {best['trial_id']}: {metric} {best['objective']:.4g} at epoch {best['epochs_done']} "
                     f"({best['status']}); " + against_default(best, default_rows))
    if best is not None and best.get("best_checkpoint"):
        lines.append(f"best trial's best checkpoint: {best['best_checkpoint']}")
    elif best is None:
        lines.append(f"{no_healthy_trial(trials)}: no best config written")
    lines += unmoving_lines(trials, history, metric)
    lines += identical_lines(trials, params)
    lines += branch_lines(trials, meta)
    lines += pareto_lines(trials, meta)
    if "lineage" in trials:
        lines.append(population_lines(shown))
    if "cpu_s" in trials:
        lines.append(cost_line(trials, "trials"))
    lines += prior_lines(meta)
    if history is not None and meta.get("scheduler") in ("asha", "none") and meta.get("grace_epochs"):
        lines.append(early_epochs_line(early_ranking(trials, history, meta), meta["grace_epochs"]))
    if "importance" in written:
        lines.append(study.summary(read_parquet(written["importance"])))
    if meta.get("provenance"):
        lines.append(provenance.summary(meta["provenance"]))
    lines += [f"{name}: {uri}" for name, uri in written.items()]
    return "\n".join(lines)


def pareto_lines(trials: pd.DataFrame, meta: dict) -> list[str]:
    """A multi-objective sweep's Pareto front, each objective's final value."""
    if not (meta.get("objectives") and "pareto" in trials):
        return []
    columns = ["trial_id"] + [f"final/{o['metric']}" for o in meta["objectives"]]
    front = trials.loc[trials["pareto"], columns]
    return [f"Pareto front ({len(front)} of {len(trials)} trials; column 'pareto' in trials.parquet):",
            front.to_string(index=False, float_format=lambda v: f"{v:.4g}") if len(front) else "  (empty)"]


def prior_lines(meta: dict) -> list[str]:
    """What the sweep started from besides its space: hand-picked configs, an earlier sweep's trials."""
    lines = []
    if meta.get("enqueued"):
        lines.append(f"enqueued: {len(meta['enqueued'])} hand-picked configs ran after the default (column "
                     "is_enqueued)")
    if meta.get("warm_start"):
        warm = meta["warm_start"]
        stopped = (f", and {warm['unhealthy']} trials its health checks stopped, as infeasible"
                   if warm.get("unhealthy") else "")
        lines.append(f"warm start: {warm['used']} of the {warm['completed']} completed trials of {warm['sweep']} fit "
                     f"this space and were given to Optuna as prior trials{stopped}")
    return lines


def no_healthy_trial(trials: pd.DataFrame) -> str:
    """Why a sweep has no best: every trial failed (the first error, one line), or how they ended."""
    errors = [e for e in trials["error"] if e] if "error" in trials else []
    if len(trials) and len(errors) == len(trials):
        return f"every trial failed: {errors[0]}"
    return f"no healthy finished trial ({how_trials_ended(trials)})"


def how_trials_ended(trials: pd.DataFrame) -> str:
    """Counts of each way the trials ended, e.g. 'STOPPED identity_mapping 6, ERROR 2'."""
    ends = (trials["status"] + " " + trials["stop_reason"].fillna("")).str.strip()
    return ", ".join(f"{end} {count}" for end, count in ends.value_counts().items())


FLAT = 1e-6  # relative: a change smaller than this is no change (npt's frozen scale gave exactly 1.0)


def unmoving_lines(trials: pd.DataFrame, history: pd.DataFrame | None, metric: str) -> list[str]:
    """One line for trials whose objective did not change over their epochs, one for a sweep
    whose trials all ended at the same value: either way the search cannot rank what it tried."""
    lines = []
    if history is not None and len(history) and metric in history:
        flat = []
        for trial_id, runs in history.groupby("trial_id", sort=False):
            values = pd.to_numeric(runs[metric], errors="coerce").dropna()
            if len(values) > 1 and values.max() - values.min() <= FLAT * max(1.0, values.abs().max()):
                flat.append((trial_id, values.iloc[-1]))
        if flat:
            named = ", ".join(f"{t} at {v:.6g}" for t, v in flat[:5]) + (f" and {len(flat) - 5} more" if len(flat) > 5 else "")
            lines.append(f"flat objective: {len(flat)} trial(s) kept {metric} unchanged over every epoch ({named}): "
                         "training does not move it (a frozen model, a zero-scale checkpoint, a metric of the inputs?)")
    values = pd.to_numeric(trials["objective"], errors="coerce").dropna()
    if len(values) > 1 and values.max() - values.min() <= FLAT * max(1.0, values.abs().max()):
        lines.append(f"all {len(values)} finished trials ended at {values.iloc[0]:.7g} in {metric} (within "
                     f"{FLAT:g} of each other): the sweep cannot tell its configs apart")
    return lines


def identical_lines(trials: pd.DataFrame, params: list[str], shown: int = 5) -> list[str]:
    """Groups of trials that ended at exactly the same objective at the same epoch. Trials of one
    sweep share a training seed, so their configs differ only in parameters that had no effect on
    that run: a cap that never bound, a weight of a term that stayed zero. A sampler can spend many
    trials on such a plateau; the parameters are worth fixing or narrowing."""
    finished = trials[np.isfinite(pd.to_numeric(trials["objective"], errors="coerce"))]
    groups = [group for _, group in finished.groupby(["objective", "epochs_done"], sort=False) if len(group) > 1]
    if not groups:
        return []
    lines = ["identical results (trials that ended at exactly the same value: what their configs differ in had "
             "no effect there):"]
    for group in groups:
        ids = group["trial_id"].tolist()
        named = ", ".join(ids[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")
        differ = [p.replace("config/", "") for p in params if group[p].astype(str).nunique() > 1]
        lines.append(f"  {len(ids)} trials at {group['objective'].iloc[0]:.6g} (epoch {group['epochs_done'].iloc[0]}): "
                     f"{named}; they differ in {', '.join(differ) or 'nothing searched'}")
    return lines


def branch_lines(trials: pd.DataFrame, meta: dict) -> list[str]:
    """Per branch of the space (each value of a switch: hdr_patch's caps/mode A or B), the trials
    drawn there and the median and best objective of those that completed. TPE follows the
    branch whose first trials did best, which need not hold the best config: on hdr_patch, random
    search found its best in Mode B at 9 of 10 seeds, while TPE + ASHA over the `all` space drew
    Mode A in 85-97% of its trials at each of 6 (benchmarks/history.md, 2026-11-27). A branch
    with too few completed trials beside one with many is named, with how to compare the two."""
    lines = []
    for name, values in study.space_switches(meta).items():
        if f"config/{name}" not in trials:
            continue
        drawn = {value: trials[trials[f"config/{name}"] == value] for value in values}
        done = {value: rows.loc[rows["status"] == "COMPLETED", "objective"].astype(float)
                for value, rows in drawn.items()}
        lines.append(f"branches of {name} (trials drawn there; of those that completed every epoch healthy, the "
                     "median and best objective):")
        for value in values:
            ran = done[value]
            figures = f", median {ran.median():.4g}, best {best_of(ran, meta):.4g}" if len(ran) else ""
            lines.append(f"  {name}={value}: {len(drawn[value])} drawn, {len(ran)} completed{figures}")
        most = max(values, key=lambda v: len(done[v]))
        for value in values:
            if len(done[value]) < study.MIN_TRIALS and len(done[most]) >= 2 * study.MIN_TRIALS:
                lines.append(f"  {name}={value} has {len(done[value])} completed trials against {name}={most}'s "
                             f"{len(done[most])}: this sweep cannot say which holds the better config (a model-based "
                             f"search follows the branch whose first trials did best); to compare them, sweep with "
                             f"--search random or --enqueue configs with {name}={value}")
    return lines


def best_of(values: pd.Series, meta: dict) -> float:
    return values.min() if meta["objective"]["mode"] == "min" else values.max()


def early_epochs_line(ranking: pd.DataFrame, grace: int) -> str:
    """Whether ASHA's first stop (--grace-epochs) ranks trials as their last epoch does, and from
    which epoch on the ranking holds where it does not."""
    if not len(ranking) or grace not in set(ranking["epoch"]):
        return (f"early epochs: not judged (fewer than {MIN_RANKED} trials ran every epoch, or --grace-epochs is "
                "the last epoch)")
    by_epoch = ranking.set_index("epoch")
    at = by_epoch.loc[grace]
    said = (f"early epochs: at epoch {grace} (--grace-epochs, where ASHA first stops trials) the objective ranks "
            f"the {int(at['n'])} trials that ran every epoch with Spearman {at['rho']:.2f} [95% CI {at['low']:.2f}, "
            f"{at['high']:.2f}] against their final values")
    if at["rho"] >= RANKS_LIKE_FINAL:
        return said
    holds = by_epoch["rho"] >= RANKS_LIKE_FINAL
    from_on = holds.index[holds.index > holds.index[~holds].max()]  # after the last epoch below it
    if not len(from_on):
        return (f"{said}; no earlier epoch reaches {RANKS_LIKE_FINAL}: ASHA may stop the eventual best, prefer "
                "--scheduler none")
    first = int(from_on[0])
    row = by_epoch.loc[first]
    return (f"{said}; from epoch {first} on {RANKS_LIKE_FINAL} or more ({row['rho']:.2f} [{row['low']:.2f}, "
            f"{row['high']:.2f}]): ASHA may stop the eventual best, consider --grace-epochs {first}")


def population_lines(shown: pd.DataFrame) -> str:
    """A PBT sweep's trials as they ran: which trial trained which epochs of each one's final
    weights, and the learning rate it followed epoch by epoch (its config column is only the last)."""
    lines = ["lineage (trial epochs > the trial that continued them; trials.parquet: lineage, lr_by_epoch; "
             "history.parquet: run and lr per epoch):"]
    lines += [f"  {row['trial_id']}: {row['lineage']}; lr by epoch {row['lr_by_epoch']}" for _, row in shown.iterrows()]
    return "\n".join(lines)


def against_default(best, default_rows: pd.DataFrame) -> str:
    """The best trial's change against the documented default, only where the default ran to its
    last epoch healthy: a default that errored, stopped unhealthy or was cut short is no baseline."""
    if not len(default_rows):
        return "the documented default is not among the trials: no change reported"
    default = default_rows.iloc[0]
    base = default["objective"]
    if default["status"] != "COMPLETED" or not math.isfinite(base):
        why = default.get("error") or default["stop_reason"] or f"{default['epochs_done']} epochs"
        return f"the documented default did not finish ({default['status']}: {why}): no change reported"
    # a default of exactly 0 takes no percentage (it was "+nan%"): the change in the metric's units
    change = f"{(best['objective'] - base) / abs(base):+.1%}" if base else f"{best['objective'] - base:+.4g} (from 0)"
    return (f"documented default: {base:.4g} (COMPLETED); change {change} (one training seed each: a best of "
            "many noisy runs, not a verdict; the confirmation gives one)")
