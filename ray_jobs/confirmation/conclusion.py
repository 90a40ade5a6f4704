"""A confirmation run to its verdicts: at a fixed number of seeds, or with --seeds auto in rounds
until every config is decided (ray_jobs/confirmation/sequential.py); then the summary and the printed
verdicts (ray_jobs/confirmation/verdicts.py) written beside the runs (ray_jobs/confirmation/runs.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from losstune.ray_jobs.confirmation import sequential, verdicts
from losstune.ray_jobs.confirmation.runs import CONFIRM_FILE, REPORT_FILE, SUMMARY_FILE, folder_name, run
from losstune.ray_jobs.confirmation.verdicts import Candidate, further_objectives
from losstune.ray_jobs.core.plan import SweepPlan
from losstune.ray_jobs.core.storage import exists, join, read_parquet, write_bytes, write_parquet
from losstune.ray_jobs.core.usage import UsageError


def conclude(plan: SweepPlan, chosen: list[Candidate], seeds: list[int], table: pd.DataFrame,
             folder: str | None = None, decided: Decided | None = None) -> str:
    """The summary and the printed confirmation of a finished run, written beside its
    confirm.parquet (in `folder`, default the confirmation's own); returns the printed text.
    `decided`: a --seeds auto confirmation's decisions. UsageError naming --min-effect where a
    percentage is taken of a default whose mean is about 0 (the runs stay; --resume with an
    absolute --min-effect draws the verdict)."""
    try:
        confirmed = verdicts.summary(table, chosen, plan.objective["mode"], further_objectives(plan), plan.min_effect,
                                     decided.decisions if decided else None)
    except ValueError as err:
        raise UsageError(str(err)) from None
    text = verdicts.report(confirmed, plan, seeds, table, decided.stopped if decided else "")
    folder = folder or join(plan.experiment, folder_name(plan, len(chosen) - 1, len(seeds)))
    write_parquet(join(folder, SUMMARY_FILE), confirmed.assign(min_effect_arg=plan.min_effect))
    write_bytes(join(folder, REPORT_FILE), text.encode())
    return text


@dataclass(frozen=True)
class Decided:
    """What a --seeds auto confirmation decided, and why it stopped where it did."""
    decisions: dict  # config_id -> sequential.Decision
    stopped: str  # "every config decided at 7 seeds", "at the most seeds, 20 (--max-seeds)"


def run_and_conclude(plan: SweepPlan, chosen: list[Candidate], seeds: list[int], folder: str, auto: bool = False,
                     resume: bool = False, earlier: pd.DataFrame | None = None) -> str:
    """Run a confirmation in `folder` (Ray started, `plan` fitted to the cluster), at `seeds`, or
    with `auto` up to them until decided, and conclude it; returns the printed text. Interrupted
    after a Ctrl-C; UsageError where the verdict cannot be drawn (`conclude`)."""
    if auto:
        table, decided = run_until_decided(plan, chosen, seeds, folder, resume)
        return conclude(plan, chosen, sorted(set(table["seed"])), table, folder, decided)
    table = run(plan, chosen, seeds, resume=resume, folder=folder, earlier=earlier)
    return conclude(plan, chosen, seeds, table, folder)


def run_until_decided(plan: SweepPlan, chosen: list[Candidate], seeds: list[int], folder: str,
                      resume: bool = False) -> tuple[pd.DataFrame, Decided]:
    """--seeds auto: the default and the undecided configs at the next round of `seeds` (3, then 2 at
    a time, up to len(seeds)), each round a Tune run in <folder>/look<N>, until every config is
    decided (ray_jobs/confirmation/sequential.py). A round that finished is read back, not rerun (--resume).
    Returns every run's row, also written to <folder>/CONFIRM_FILE, and the decisions."""
    planned, table, taken = sequential.looks(len(seeds)), pd.DataFrame(), 0
    live = chosen[1:]
    for n in planned:
        look = join(folder, f"look{n}")
        if exists(join(look, CONFIRM_FILE)):
            ran = read_parquet(join(look, CONFIRM_FILE))
        else:
            ran = run(plan, [chosen[0], *live], seeds[taken:n], resume=resume, folder=look)
        table, taken = pd.concat([table, ran], ignore_index=True), n
        decisions = sequential.decide(*decision_values(table, chosen, seeds[:n]), plan.objective["mode"],
                                      plan.min_effect, planned)
        live = [c for c in live if not decisions[c.config_id].verdict and not failed(table, c.config_id)]
        if not live:
            break
    write_parquet(join(folder, CONFIRM_FILE), table)
    lost = [c.config_id for c in chosen[1:] if failed(table, c.config_id)]
    why = (f"{len(live)} config(s) undecided at the most seeds, {taken} (--max-seeds)" if live else
           f"every config decided by {taken} seeds" + (f" ({', '.join(lost)} failed at a seed: not confirmed)"
                                                        if lost else ""))
    return table, Decided(decisions, f"stopped at {taken} of up to {len(seeds)} seeds: {why}")


def decision_values(table: pd.DataFrame, chosen: list[Candidate], seeds: list[int]):
    """({config: its objective at the seeds it ran, in seed order}, the default's at every seed); a
    run that did not end healthy is NaN."""
    healthy = table.assign(objective=table["objective"].where(table["status"] == "COMPLETED"))
    by_config = {name: group.set_index("seed")["objective"] for name, group in healthy.groupby("config_id")}
    default = by_config[chosen[0].config_id].reindex(seeds).to_numpy(float)
    return {c.config_id: by_config[c.config_id].sort_index().to_numpy(float) for c in chosen[1:]}, default


def failed(table: pd.DataFrame, config_id: str) -> bool:
    """A config that failed at a seed is not confirmed (verdicts.summary): it gets no more seeds."""
    return bool((table.loc[table["config_id"] == config_id, "status"] != "COMPLETED").any())
