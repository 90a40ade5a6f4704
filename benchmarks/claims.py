"""python benchmarks/claims.py [--folder DIR] [--only EXPERIMENT ...] [--seeds 5] [--write docs/claims.md]

Every quantitative claim of the five seed documents, each with the experiment that tests it here
and the verdict the confirmation's statistics give (ray_jobs/confirmation/stats.py: a paired t 95%
interval over training seeds, the sign pattern, the exact sign-flip p, a minimum effect of 1% of
the reference's mean). An experiment is one `losstune-compare` run (printed beside each row, so
each row is one command); several claims read the same runs. A claim that cannot be measured
here says what it needs.

  --folder DIR     where the comparisons live (default benchmarks/claims_runs, ignored by git);
                   an experiment whose comparison is already there is read, not rerun
  --only NAME ...  run only these experiments (default: every measurable one)
  --table-only     run nothing: the table from what DIR holds
  --write FILE     also write the table as Markdown into FILE, after its marker line (docs/claims.md)

Verdict of a claim, always about the regime the row names (data, model size, epochs; never the
seed's own full-size runs): "holds here" where the comparison beats the reference in the claimed
direction and, for a claimed size, the relative 95% interval overlaps it; "does not hold here"
where it is worse, equivalent, or its interval lies wholly outside the claimed size; otherwise
"inconclusive at N"; "not measurable here" with what it needs. None says "refuted": no experiment
here tests a claim in its own regime. The relative interval divides the paired interval by the
reference's mean (its own spread is not propagated: an approximation, said so in the table); the
verdict itself takes the minimum effect per seed (ray_jobs/confirmation/stats.py).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import subprocess
import sys

import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from benchmarks.claim_ledger import CLAIMS, EXPERIMENTS, Claim  # noqa: E402


HOLDS, FAILS = "holds here", "does not hold here"  # in the regime the row names


def comparison_folder(folder: str, name: str, seeds: int) -> str:
    return os.path.join(folder, name, f"compare_seeds{seeds}")


def run_experiment(folder: str, name: str, seeds: int) -> None:
    """The experiment's losstune-compare, unless its comparison is already in `folder`."""
    if os.path.exists(os.path.join(comparison_folder(folder, name, seeds), "confirm_summary.parquet")):
        return
    resume = ["--resume"] if os.path.exists(os.path.join(folder, name)) else []
    command = EXPERIMENTS[name].command(folder, name, seeds) + resume
    print("$", shlex.join(command), flush=True)
    subprocess.run(command, check=True)


def judge(claim: Claim, runs: pd.DataFrame) -> dict:
    """The claim's measured difference and verdict from the comparison's runs."""
    # here, not at the top: loads scipy only where this runs (--help and --table-only stay quick)
    from losstune.ray_jobs.confirmation import stats as confirm_stats

    column = f"final/{claim.metric}"
    if column not in runs:
        return {"result": f"{claim.metric} not recorded by these runs", "verdict": "not measurable here"}
    reference = runs["config_id"].iloc[0]
    healthy = runs[runs["status"] == "COMPLETED"]
    own = healthy[healthy["config_id"] == claim.config].set_index("seed")[column].dropna()
    if claim.better == "range":  # a claimed range for the setting's own value, e.g. a learnt scale
        low, high = confirm_stats.t_interval(own.to_numpy())
        inside = claim.size[0] <= low and high <= claim.size[1]
        outside = high < claim.size[0] or low > claim.size[1]
        verdict = HOLDS if inside else FAILS if outside else f"inconclusive at {len(own)}"
        return {"result": f"mean {own.mean():.3g}, 95% CI [{low:.3g}, {high:.3g}], N {len(own)}", "verdict": verdict}
    base = healthy[healthy["config_id"] == reference].set_index("seed")[column].dropna()
    seeds = own.index.intersection(base.index)
    if len(seeds) < 2:  # too few seeds where both ran healthy: say why instead of an interval of NaNs
        stopped = runs[(runs["config_id"] == claim.config) & (runs["status"] != "COMPLETED")]
        reasons = ", ".join(sorted(set(stopped["stop_reason"].fillna("").replace("", "error"))))
        return {"result": f"{len(seeds)} healthy pair(s): {claim.config} stopped at {len(stopped)} of "
                          f"{(runs['config_id'] == claim.config).sum()} seeds ({reasons})",
                "verdict": f"not measurable here: its runs were stopped ({reasons})"}
    c = confirm_stats.judge([confirm_stats.compare(own[seeds].to_numpy(), base[seeds].to_numpy(), claim.better)])[0]
    scale = abs(base[seeds].mean())
    rel = (c.ci_low / scale, c.ci_high / scale) if scale else (math.nan, math.nan)
    result = (f"{reference} {base[seeds].mean():.4g} -> {own[seeds].mean():.4g}: {c.diff:+.3g} "
              f"({c.relative:+.1%}), 95% CI [{c.ci_low:+.3g}, {c.ci_high:+.3g}]"
              + (f" ({rel[0]:+.0%}, {rel[1]:+.0%})" if scale else "")
              + f", better at {c.better} of {c.pairs}, p {c.p_value:.2g}, N {c.pairs}: {c.verdict}")
    return {"result": result, "verdict": claim_verdict(claim, c, rel)}


def claim_verdict(claim: Claim, c, rel: tuple) -> str:
    """holds here / does not hold here / inconclusive, from the comparison's verdict (c) and, for a
    claimed size, the relative interval (rel)."""
    undecided = f"inconclusive at {c.pairs}" + (f" (about {c.seeds_needed} would decide it)" if c.seeds_needed else "")
    if c.would_be:
        undecided += f" (the differences are too skewed for the t tests, which alone would say {c.would_be})"
    if claim.expects == "no worse":
        return {"beats": HOLDS, "equivalent": HOLDS, "worse": FAILS}.get(c.verdict, undecided)
    if c.verdict in ("worse", "equivalent"):
        return FAILS
    if c.verdict != "beats":
        return undecided
    low, high = sorted(rel)
    if claim.size and (high < claim.size[0] or low > claim.size[1]):
        return f"{FAILS} (the effect is real, its size is not the claimed one)"
    return HOLDS


def table(folder: str, seeds: int) -> pd.DataFrame:
    rows = []
    for claim in CLAIMS:
        row = {"seed": claim.seed, "claim": claim.claim,
               "regime": EXPERIMENTS[claim.experiment].size if claim.experiment else claim.regime or "-"}
        if claim.experiment is None:
            row |= {"experiment": "-", "result": claim.measured_elsewhere or "-",
                    "verdict": claim.elsewhere_verdict or f"not measurable here: {claim.needs}"}
        else:
            row["experiment"] = (f"`python benchmarks/claims.py --only {claim.experiment}` "
                                 f"(`{claim.metric}` of `{claim.config}`)")
            runs_file = os.path.join(comparison_folder(folder, claim.experiment, seeds), "confirm.parquet")
            if os.path.exists(runs_file):
                row |= judge(claim, pd.read_parquet(runs_file))
                if claim.caveat:
                    row["verdict"] += f" ({claim.caveat})"
            else:
                row |= {"result": "not run yet", "verdict": "not run"}
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame, seeds: int) -> str:
    lines = ["| seed, section | claim | regime (data, model, epochs) | experiment | measured (N training seeds, paired) "
             "| verdict |", "|---|---|---|---|---|---|"]
    for row in frame.itertuples():
        cells = [str(v).replace("|", "/").replace("\n", " ") for v in
                 (row.seed, row.claim, row.regime, row.experiment, row.result, row.verdict)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| experiment | data, model, epochs | the losstune-compare it runs |", "|---|---|---|"]
    for name, experiment in EXPERIMENTS.items():
        command = shlex.join(experiment.command("benchmarks/claims_runs", name, seeds)[:-1])
        lines.append(f"| {name} | {experiment.size} | `{command}` |")
    return "\n".join(lines)


def counts(frame: pd.DataFrame) -> dict:
    kinds = (HOLDS, FAILS, "inconclusive", "not measurable", "not run")
    return {kind: int(frame["verdict"].str.startswith(kind).sum()) for kind in kinds}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--folder", default=os.path.join(HERE, "claims_runs"))
    p.add_argument("--only", nargs="+", choices=sorted(EXPERIMENTS))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--write", metavar="FILE")
    args = p.parse_args()
    folder = os.path.abspath(args.folder)
    if not args.table_only:
        for name in args.only or EXPERIMENTS:
            run_experiment(folder, name, args.seeds)
    frame = table(folder, args.seeds)
    text = markdown(frame, args.seeds)
    print(text)
    print("\n" + ", ".join(f"{k}: {v}" for k, v in counts(frame).items()))
    if args.write:
        write_table(args.write, text + "\n\n" + ", ".join(f"{k}: {v}" for k, v in counts(frame).items()) + "\n")


MARKER = "<!-- the table below is written by `python benchmarks/claims.py --table-only --write docs/claims.md` -->"


def write_table(path: str, table_text: str) -> None:
    """Replace what follows MARKER in `path` (the page's own text above it stays)."""
    with open(path) as f:
        head = f.read().split(MARKER)[0]
    with open(path, "w") as f:
        f.write(head + MARKER + "\n\n" + table_text)


if __name__ == "__main__":
    main()
