"""losstune-analyze results/<sweep>

Rebuild a sweep's trials.parquet, history.parquet, best_config.json, importance.parquet, plots and
report.html from Tune's experiment files and the Optuna study, for a finished sweep or one still
running, and print its report. On a cluster
the path is the sweep's storage URI (e.g. s3://my-bucket/losstune/<sweep>):

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        losstune-analyze s3://my-bucket/losstune/<sweep>
"""

from __future__ import annotations

import argparse
import sys

from losstune.ray_jobs import report, results, storage
from losstune.ray_jobs.flags import HelpFormatter
from losstune.ray_jobs.report_html import write_report_html


def main(argv=None) -> int:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its INFO on every in-memory study of importance
    p = argparse.ArgumentParser(prog="losstune-analyze", description=__doc__, formatter_class=HelpFormatter,
                                epilog="exit status: 0 the report was written; 2 not a sweep folder, or nothing to read yet")
    p.add_argument("experiment", help="<storage>/<sweep name>")
    p.add_argument("--top", type=int, default=10, help="trials shown in the printed report")
    args = p.parse_args(argv)
    if args.top < 1:
        print(f"analyze: error: --top: must be >= 1, got {args.top}", file=sys.stderr)
        return 2
    experiment = storage.absolute(args.experiment.rstrip("/"))
    try:
        meta = results.read_meta(experiment)
        results.check_tune_state(experiment)
    except results.SweepFolderError as err:
        print(f"analyze: error: {err}", file=sys.stderr)
        return 2
    grid = results.all_results(experiment, meta.get("extensions", []))
    trials, history = results.tables(grid, meta, experiment)
    written = results.write_all(experiment, trials, history, meta)
    print(report.report(trials, meta, written, top=args.top, history=history))
    print(f"report: {write_report_html(experiment)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
