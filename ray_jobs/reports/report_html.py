"""report.html: one self-contained page per sweep, built from the files in its folder (ray_jobs.reports.load):
the answer (each confirmed config against the default, in a sentence), the summary, the confirmations, importance, every figure (PNGs inlined as data
URIs), the best checkpoints, provenance and cost. No script and no link out: it opens offline, from
a bucket, or attached to an e-mail."""

from __future__ import annotations

import base64
import html
import json

import pandas as pd

from losstune.ray_jobs.core import provenance
from losstune.ray_jobs.results import study
from losstune.ray_jobs.confirmation.verdicts import answer
from losstune.ray_jobs.reports.load import REPORT_HTML, Sweep, load_sweep
from losstune.ray_jobs.reports.report import report
from losstune.ray_jobs.results.trial_stats import cost_line
from losstune.ray_jobs.core.storage import join, read_bytes_of, write_bytes

STYLE = """body{font-family:sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:2em}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.8em}
table{border-collapse:collapse;font-size:.8em}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:right}
tr.default td{background:#fde8cf}img{max-width:100%;margin:.5em 0;border:1px solid #eee}
figure{margin:1em 0}.wide{overflow-x:auto}figcaption{font-size:.8em;color:#555}"""

FIGURE_ORDER = ("objective", "pareto", "optuna_history", "optuna_slice", "optuna_parallel", "optuna_contour",
                "optuna_edf", "optuna_pareto", "optuna_importance")
SECTIONS = ("answer", "summary", "confirmation", "importance", "figures", "checkpoints", "provenance", "cost")
COMPARE_SECTIONS = ("answer", "confirmation", "provenance", "cost")  # losstune-compare: no sweep


def write_report_html(experiment: str) -> str:
    """Build <experiment>/report.html from the sweep's files; returns its URI."""
    sweep = load_sweep(experiment)
    uri = join(sweep.path, REPORT_HTML)
    write_bytes(uri, page(sweep).encode())
    return uri


def page(sweep: Sweep) -> str:
    meta = sweep.meta
    compared = meta.get("kind") == "compare"
    title = f"{meta['family']} / {'comparison' if compared else meta['space']}: {meta.get('name', sweep.path)}"
    runs = (f"{', '.join(meta['configs'])} compared" if compared else f"{len(sweep.trials)} trials of {meta['trials']}")
    body = [f"<h1>{esc(title)}</h1>",
            f"<p>objective {esc(meta['objective']['metric'])} ({meta['objective']['mode']}); {esc(runs)}, "
            f"{meta['epochs']} epochs each; folder <code>{esc(sweep.path)}</code></p>"]
    parts = {"answer": answer_section, "summary": summary_section, "confirmation": confirmation_section,
             "importance": importance_section, "figures": figures_section, "checkpoints": checkpoints_section,
             "provenance": provenance_section, "cost": cost_section}
    sections = COMPARE_SECTIONS if meta.get("kind") == "compare" else SECTIONS
    for name in sections:
        body.append(f'<section id="{name}"><h2>{name.capitalize()}</h2>{parts[name](sweep)}</section>')
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")


def esc(text) -> str:
    return html.escape(str(text))


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def table_html(frame: pd.DataFrame, shaded: list[bool] | None = None) -> str:
    """A table; the rows `shaded` marks (the documented default's) on an orange ground."""
    head = "".join(f"<th>{esc(column)}</th>" for column in frame.columns)
    rows = []
    for k, values in enumerate(frame.itertuples(index=False)):
        mark = ' class="default"' if shaded is not None and shaded[k] else ""
        rows.append(f"<tr{mark}>" + "".join(f"<td>{esc(cell(v))}</td>" for v in values) + "</tr>")
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def cell(value) -> str:
    """A table cell: floats to 4 significant digits, a parameter a trial's branch lacks blank."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"
    return str(value)


def answer_section(sweep: Sweep) -> str:
    """The page's first lines: per confirmation, one sentence per config against the default."""
    metric = sweep.meta["objective"]["metric"]
    if not sweep.confirmations:
        return ("<p>Not confirmed yet: the figures below are each from one training seed, and the best of many noisy "
                f"runs is an optimistic estimate. <code>losstune-confirm {esc(sweep.path)}</code> reruns the default and "
                "the best at new seeds and gives a verdict.</p>")
    parts = []
    for name, confirmed in sweep.confirmations.items():
        compared = confirmed.summary.iloc[1:]
        sentences = "".join(f"<li>{esc(answer(row, metric))}</li>" for row in compared.itertuples())
        parts.append(f"<p>{esc(name)}:</p><ul>{sentences}</ul>")
    return "".join(parts)


def summary_section(sweep: Sweep) -> str:
    shown = sweep.trials.head(20)
    columns = ["trial_id", "status", "stop_reason", "epochs_done", "objective",
               *[c for c in ("lineage",) if c in sweep.trials],  # a PBT sweep's
               *[c for c in sweep.trials.columns if c.startswith("config/")]]
    return (pre(report(sweep.trials, sweep.meta, {}, history=sweep.history))
            + "<p>The top 20 trials; the documented default shaded.</p>"
            + table_html(shown[columns], shown["is_default"].tolist()))


def confirmation_section(sweep: Sweep) -> str:
    if not sweep.confirmations:
        return "<p>No confirmation over seeds yet: <code>losstune-confirm " + esc(sweep.path) + "</code> runs one.</p>"
    parts = []
    for name, confirmed in sweep.confirmations.items():
        parts.append(f"<h3>{esc(name)}</h3>" + pre(confirmed.text)
                     + table_html(confirmed.summary, (confirmed.summary["config_id"] == "default").tolist()))
    return "".join(parts)


def importance_section(sweep: Sweep) -> str:
    if not len(sweep.importance):
        return f"<p>Not computed: fewer than {study.MIN_TRIALS} completed trials.</p>"
    return pre(study.summary(sweep.importance)) + table_html(sweep.importance)


def figures_section(sweep: Sweep) -> str:
    parts = []
    for name in sorted(sweep.figures, key=figure_rank):
        data = base64.b64encode(read_bytes_of(join(sweep.path, name))).decode()
        parts.append(f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{esc(name)}</figcaption></figure>")
    return "".join(parts) or "<p>No figures.</p>"


def figure_rank(name: str) -> tuple:
    kinds = [k for k, prefix in enumerate(FIGURE_ORDER) if name.startswith(prefix)]
    return (kinds[-1] if kinds else len(FIGURE_ORDER), name)


def checkpoints_section(sweep: Sweep) -> str:
    kept = sweep.trials[sweep.trials["best_checkpoint"].fillna("") != ""].head(10)
    if not len(kept):
        return "<p>No checkpoint kept.</p>"
    return table_html(kept[["trial_id", "status", "objective", "best_checkpoint"]], kept["is_default"].tolist())


def provenance_section(sweep: Sweep) -> str:
    record = sweep.meta.get("provenance")
    if not record:
        return "<p>Not recorded (a sweep from before provenance was).</p>"
    return f"<p>{esc(provenance.summary(record))}</p>" + pre(json.dumps(record, indent=2))


def cost_section(sweep: Sweep) -> str:
    lines = [cost_line(sweep.trials, "trials of the sweep")] if "cpu_s" in sweep.trials else []
    lines += [cost_line(c.runs, f"runs of {name}") for name, c in sweep.confirmations.items() if "cpu_s" in c.runs]
    return "".join(f"<p>{esc(line)}</p>" for line in lines) or "<p>Not recorded.</p>"
