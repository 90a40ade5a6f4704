"""losstune-analyze results/<sweep> [results/<another sweep> ...]

Rebuild a sweep's trials.parquet, history.parquet, best_config.json, importance.parquet, plots and
report.html from Tune's experiment files and the Optuna study, for a finished sweep or one still
running, and print its report. Given two or more sweeps, rebuild each and print them side by side
(best and confirmed results, importance, branches), also written as one HTML page. On a cluster
the path is the sweep's storage URI (e.g. s3://my-bucket/losstune/<sweep>):

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        losstune-analyze s3://my-bucket/losstune/<sweep>
"""

from __future__ import annotations

import argparse
import sys

from losstune.ray_jobs.reports import report, side_by_side
from losstune.ray_jobs.results import tables as results
from losstune.ray_jobs.core import storage
from losstune.ray_jobs.cli.flags import HelpFormatter
from losstune.ray_jobs.reports.report_html import write_report_html
from losstune.ray_jobs.reports.load import confirmations, load_sweep
from losstune.ray_jobs.results.study import load_study
import optuna


def main(argv=None) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its INFO on every in-memory study of importance
    p = argparse.ArgumentParser(prog="losstune-analyze", description=__doc__, formatter_class=HelpFormatter,
                                epilog="exit status: 0 the report was written; 2 not a sweep folder, or nothing to read yet")
    p.add_argument("experiments", nargs="+", metavar="SWEEP", help="<storage>/<sweep name>; two or more: side by side")
    p.add_argument("--top", type=int, default=10, help="trials shown in the printed report")
    p.add_argument("--side-by-side", metavar="HTML",
                   help="where the page of two or more sweeps goes (default: side_by_side-<A>-<B>.html beside the first)")
    args = p.parse_args(argv)
    if args.top < 1:
        print(f"analyze: error: --top: must be >= 1, got {args.top}", file=sys.stderr)
        return 2
    experiments = [storage.absolute(e.rstrip("/")) for e in args.experiments]
    try:  # every folder checked before anything is written
        metas = [results.read_meta(e) for e in experiments]
        for experiment, meta in zip(experiments, metas):
            check_readable(experiment, meta)
    except results.SweepFolderError as err:
        print(f"analyze: error: {err}", file=sys.stderr)
        return 2
    printed = [rebuild(e, meta, args.top) for e, meta in zip(experiments, metas)]
    if len(experiments) == 1:
        print(printed[0])
        return 0

    sweeps = [load_sweep(e) for e in experiments]
    print(side_by_side.text(sweeps))
    uri = args.side_by_side or f"{experiments[0].rsplit('/', 1)[0]}/side_by_side-" + "-".join(
        e.rsplit("/", 1)[-1] for e in experiments) + ".html"
    print(f"side by side: {side_by_side.write_html(sweeps, storage.absolute(uri))}")
    return 0


def check_readable(experiment: str, meta: dict) -> None:
    """What rebuild reads, read once to check it: Tune's state (of each --resume --trials extension
    too), the Optuna journal, the confirmations; SweepFolderError naming a damaged file."""
    results.check_tune_state(experiment)
    for name in meta.get("extensions", []):
        if storage.exists(storage.join(experiment, name)):
            results.check_tune_state(storage.join(experiment, name))
    load_study(experiment)
    confirmations(experiment)


def rebuild(experiment: str, meta: dict, top: int) -> str:
    """Rewrite a sweep's result files and report.html; returns its printed report and where the page went."""
    grid = results.all_results(experiment, meta.get("extensions", []))
    trials, history = results.tables(grid, meta, experiment)
    written = results.write_all(experiment, trials, history, meta)
    text = report.report(trials, meta, written, top=top, history=history)
    return f"{text}{answers(experiment)}\nreport: {write_report_html(experiment)}"


def answers(experiment: str) -> str:
    """Each confirmation's answer, its sentences per config, as report.html opens with them."""
    return "".join(f"\n{name}: answer:\n{c.text.split('answer:', 1)[1].strip(chr(10))}"
                   for name, c in confirmations(experiment).items() if "answer:" in c.text)


if __name__ == "__main__":
    sys.exit(main())
