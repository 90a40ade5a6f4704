"""A confirmation's verdicts in tables and words (ray_jobs/confirmation/runs.py runs it): per config its
mean and spread, and against the reference (the documented default, or a comparison's first
config) paired by seed, the statistics of ray_jobs/confirmation/stats.py; the answer, one sentence per
config; and the printed confirmation, which ends with those sentences."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from losstune.ray_jobs.confirmation import stats as confirm_stats
from losstune.ray_jobs.confirmation.small_samples import least_p, normal_skewness_range
from losstune.ray_jobs.confirmation.stats import Comparison
from losstune.ray_jobs.confirmation import sequential
from losstune.ray_jobs.core.plan import SweepPlan
from losstune.ray_jobs.results.trial_stats import cost_line
from losstune.trainables.family_api import DEFAULT_MIN_EFFECT


@dataclass(frozen=True)
class Candidate:
    """One config a confirmation or comparison runs at every seed."""

    config_id: str  # "default", "top1", "top2", ...
    trial_id: str  # the sweep's trial it comes from
    sweep_value: float  # its objective in the sweep
    point: dict  # the flat parameters it sampled


def further_objectives(plan: SweepPlan) -> list[dict]:
    """The objectives of a multi-objective sweep besides the scalar one its confirmation ranks by."""
    return [o for o in plan.objectives if o["metric"] != plan.objective["metric"]]


def summary(table: pd.DataFrame, chosen: list[Candidate], mode: str, others: list[dict] = (),
            min_effect: str = DEFAULT_MIN_EFFECT, decisions: dict | None = None) -> pd.DataFrame:
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
    if decisions:
        comparisons = {name: sequential.applied(c, decisions[name], values[name][pairs[name]] - default[pairs[name]])
                       for name, c in comparisons.items()}
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


def comparison_columns(c: Comparison, default_mean: float, against: str) -> dict:
    """A compared config's columns in confirm_summary.parquet."""
    return {"pairs": c.pairs, "default_mean": default_mean, "diff": c.diff, "relative": c.relative,
            "diff_low": c.ci_low, "diff_high": c.ci_high, "better": c.better, "skewness": c.skewness,
            "interval": "repeated (group-sequential)" if c.decided_at else confirm_stats.INTERVAL,
            "p_value": c.p_value, "min_effect": c.min_effect, "p_verdict": c.p_verdict,
            "corrected_over": c.corrected_over, "seeds_needed": c.seeds_needed or math.nan, "verdict": c.verdict,
            "conclusion": verdict_phrase(c, against)}


def setting(candidate: Candidate, default: Candidate) -> str:
    """What a config sets differently from the default, e.g. "caps/mode=B, caps/log_delta_scale=0.32"."""
    changed = {k: v for k, v in candidate.point.items() if default.point.get(k, object()) != v}
    shown = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in changed.items()]
    return ", ".join(shown) if shown else "the reference's values"


def other_objective(healthy: pd.DataFrame, pairs: dict, objective: dict, min_effect: str, reference: str) -> dict:
    """Each config's paired difference to the default in a further objective, at the seeds where
    both ended healthy: a point of the Pareto front may trade one objective for another."""
    column, metric = f"final/{objective['metric']}", objective["metric"]
    # a value that is not finite stays in: compare leaves it out and counts it in the verdict
    default = healthy[healthy["config_id"] == reference].set_index("seed")[column]
    both, comparisons = {}, []
    for name, seeds in pairs.items():
        own = healthy[healthy["config_id"] == name].set_index("seed")[column]
        both[name] = [seed for seed in seeds if seed in own.index and seed in default.index]
        comparisons.append(confirm_stats.compare(own[both[name]].to_numpy(), default[both[name]].to_numpy(),
                                                 objective["mode"], min_effect))
    return {name: {f"diff/{metric}": c.diff, f"diff_low/{metric}": c.ci_low, f"diff_high/{metric}": c.ci_high,
                   f"verdict/{metric}": verdict_phrase(c, reference_name(reference))}
            for name, c in zip(pairs, confirm_stats.judge(comparisons))}


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


def method_line(confirmed: pd.DataFrame, plan: SweepPlan, stopped: str = "") -> str:
    compared = confirmed.iloc[1:]
    corrected = (f"verdicts Holm-corrected over the {len(compared)} configs" if len(compared) > 1
                 else "one config: no multiplicity correction needed")
    delta = compared["min_effect"].dropna()
    size = f"{delta.iloc[0]:.3g}" if len(delta) else "n/a"
    pairs = int(compared["pairs"].min()) if "pairs" in compared and compared["pairs"].notna().any() else 0
    floor = (f" (at {pairs} seeds never below {least_p(pairs):.2g})" if pairs >= 2 else "")
    if stopped:
        return (f"  how to read it: --seeds auto {stopped}; 95% repeated confidence intervals of the difference, "
                f"paired by seed, at the seeds where each stopped (valid wherever it stops); p is the exact sign-flip "
                f"test of no difference; a verdict needs the t statistic beyond its group-sequential boundary "
                f"against the minimum effect {size} (--min-effect {plan.min_effect}); {corrected}")
    return (f"  how to read it: 95% {confirm_stats.INTERVAL} intervals of the difference, paired by seed; p is the "
            f"exact sign-flip test of no difference{floor}; a verdict needs the interval "
            f"beyond the minimum effect {size} (--min-effect {plan.min_effect}); {corrected}")


def report(confirmed: pd.DataFrame, plan: SweepPlan, seeds: list[int], table: pd.DataFrame | None = None,
           stopped: str = "") -> str:
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
    lines.append(method_line(confirmed, plan, stopped))
    lines.append("answer:")
    lines += [f"  {answer(row, metric)}" for row in confirmed.iloc[1:].itertuples()]
    return "\n".join(lines)


def verdict_phrase(c: Comparison, against: str = "the default") -> str:
    """The verdict in words, with what would decide an inconclusive one, and the seeds left out."""
    dropped = f" ({c.dropped} seed(s) left out: a value that is not finite, a failed run)" if c.dropped else ""
    return verdict_words(c, against) + dropped


def verdict_words(c: Comparison, against: str) -> str:
    delta = f"{c.min_effect:.3g}"
    when = f", decided at {c.decided_at} seeds (--seeds auto)" if c.decided_at else ""
    if c.verdict == "beats":
        return f"beats {against} by more than the minimum effect {delta}{when}"
    if c.verdict == "worse":
        return f"worse than {against} by more than the minimum effect {delta}{when}"
    if c.verdict == "equivalent":
        return f"equivalent to {against} (within +/-{delta}){when}"
    if c.decided_at:
        return f"inconclusive at {c.decided_at} seeds, the most --max-seeds allows"
    if c.would_be:
        return (f"inconclusive at {c.pairs} seeds: the differences are too skewed for the t interval (sample "
                f"skewness {c.skewness:+.2f}, beyond normal's {normal_skewness_range(c.pairs):.2f} at {c.pairs} seeds); "
                f"the t tests alone would say {c.would_be}")
    if c.pairs < 2:
        return f"inconclusive at {c.pairs} paired seed(s)"
    if c.seeds_needed is None:
        return (f"inconclusive at {c.pairs} seeds: the difference is about the minimum effect {delta} "
                f"(or has no spread); no number of seeds is estimated to decide it")
    return (f"inconclusive at {c.pairs} seeds: about {max(c.seeds_needed, c.pairs + 1)} would decide it "
            f"at the observed spread (an estimate)")
