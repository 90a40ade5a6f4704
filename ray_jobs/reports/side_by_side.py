"""Two or more sweeps side by side (losstune-analyze A B): the same space before and after a
change, two presets, two spaces of one family. Per sweep: its trials, best against the documented
default, what its confirmations concluded, the most important parameters and the branch lines;
printed, and written as one HTML page. The sweeps' numbers are read from their own folders:
nothing is recomputed, and no statistic is drawn across sweeps (each trial trained at its own
sweep's seed; a confirmation's verdict is the one to compare)."""

from __future__ import annotations

import html

import pandas as pd

from losstune.ray_jobs.reports import report
from losstune.ray_jobs.results import study
from losstune.ray_jobs.reports.load import Sweep
from losstune.ray_jobs.results.ranking import best_trial
from losstune.ray_jobs.core.storage import write_bytes


def rows(sweep: Sweep) -> dict[str, str]:
    """One sweep's column of the side-by-side table."""
    meta, trials = sweep.meta, sweep.trials
    best = best_trial(trials) if len(trials) else None
    default = trials[trials["is_default"]] if len(trials) else trials
    column = {
        "family / space": f"{meta['family']} / {meta['space']}",
        "objective": f"{meta['objective']['metric']} ({meta['objective']['mode']})",
        "search / scheduler": f"{meta.get('search')} / {meta.get('scheduler')}",
        "trials": f"{len(trials)} of {meta.get('trials')}, {meta.get('epochs')} epochs",
        "ended": report.how_trials_ended(trials) if len(trials) else "-",
        "documented default": f"{default['objective'].iloc[0]:.4g}" if len(default) else "-",
        "best trial": (f"{best['trial_id']}: {best['objective']:.4g}; " + report.against_default(best, default))
        if best is not None else "no healthy finished trial",
    }
    # one row for each sweep's first confirmation, whatever its folder's name (confirm_top1_seeds5
    # beside confirm_top3_seeds5 made two half-empty rows), the folder said in the cell
    for k, (name, confirmation) in enumerate(sweep.confirmations.items()):
        column["confirmed" + (f" ({k + 1})" if k else "")] = f"{name}: {confirmed(confirmation.summary)}"
    if len(sweep.importance):
        top = study.most_important(sweep.importance, 3)
        scores = sweep.importance.query("evaluator == 'ped_anova' and branch == 'all'").set_index("param")["importance"]
        column["most important"] = ", ".join(f"{p} {scores[p]:.2f}" for p in top)
    column["branches"] = "; ".join(line.strip() for line in report.branch_lines(trials, meta)
                                   if not line.startswith("branches of")) if len(trials) else ""
    return column


def confirmed(summary: pd.DataFrame) -> str:
    """Each compared config's verdict against the reference, with its paired difference and N."""
    compared = summary[summary["config_id"] != summary["reference"]] if "reference" in summary else summary.iloc[1:]
    return "; ".join(f"{r.config_id}: {r.conclusion}" for r in compared.itertuples()) or "nothing compared"


def table(sweeps: list[Sweep]) -> pd.DataFrame:
    """Rows: what is compared; a column per sweep (its name)."""
    return pd.DataFrame({label: rows(sweep) for label, sweep in zip(labels(sweeps), sweeps)}).fillna("")


def labels(sweeps: list[Sweep]) -> list[str]:
    """Each sweep's name; its folder where names repeat (a copied sweep), else its path."""
    for label in (lambda s: s.meta.get("name", s.path), lambda s: s.path.rsplit("/", 1)[-1], lambda s: s.path):
        named = [label(s) for s in sweeps]
        if len(set(named)) == len(named):
            return named
    return [f"{i + 1}: {s.path}" for i, s in enumerate(sweeps)]


def text(sweeps: list[Sweep]) -> str:
    frame = table(sweeps)
    lines = [caveat(sweeps)] if caveat(sweeps) else []
    for what, values in frame.iterrows():
        lines.append(f"{what}:")
        lines += [f"  {name}: {value}" for name, value in values.items() if value]
    return "\n".join(lines)


def caveat(sweeps: list[Sweep]) -> str:
    """A line where the sweeps' numbers do not measure the same thing."""
    objectives = {(s.meta["family"], s.meta["objective"]["metric"]) for s in sweeps}
    if len(objectives) > 1:
        return "note: the sweeps rank different objectives or families; their values are not comparable"
    epochs = {s.meta.get("epochs") for s in sweeps}
    if len(epochs) > 1:
        return f"note: the sweeps train for different epochs ({', '.join(map(str, sorted(epochs)))}); compare their verdicts"
    return ""


def write_html(sweeps: list[Sweep], uri: str) -> str:
    frame = table(sweeps)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(f"<tr><th>{html.escape(str(what))}</th>"
                   + "".join(f"<td>{html.escape(str(v))}</td>" for v in values) + "</tr>"
                   for what, values in frame.iterrows())
    note = f"<p>{html.escape(caveat(sweeps))}</p>" if caveat(sweeps) else ""
    page = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>sweeps side by side</title>"
            "<style>body{font-family:sans-serif;margin:2em auto;max-width:1400px}table{border-collapse:collapse;"
            "font-size:.85em}td,th{border:1px solid #ddd;padding:.3em .5em;vertical-align:top;text-align:left}"
            "</style></head><body><h1>Sweeps side by side</h1>" + note
            + f"<table><tr><th></th>{head}</tr>{body}</table>"
            + "".join(f"<p><a href=\"{html.escape(s.path)}/report.html\">{html.escape(s.path)}/report.html</a></p>"
                      for s in sweeps) + "</body></html>")
    write_bytes(uri, page.encode())
    return uri
