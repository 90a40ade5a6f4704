"""losstune-confirm results/<sweep> --top 3 --seeds 5     (or --seeds auto)

Does the sweep's best really beat the documented default? Reruns the default and the sweep's top K
healthy configs at N new training seeds each (the same seeds for every config), through the
sweep's own trial function and epochs, and prints per config its mean with a 95% t interval, and
its difference to the default paired by seed: a paired t 95% interval, "better at k of N seeds",
an exact sign-flip p-value, and a verdict against --min-effect (beats, equivalent, worse, or
inconclusive with about how many seeds would decide it), Holm-corrected over the K configs.
Results: <sweep>/confirm_top<K>_seeds<N>/confirm.parquet and confirm_summary.parquet.
`--resume --seeds M` with M above an earlier confirmation's N adds seeds N+1..M to it without
rerunning the first N. `--seeds auto` runs 3 seeds, then 2 more at a time for the configs not yet
decided, and stops once every one is or at --max-seeds (group-sequential boundaries keep a fixed
N's error rates; ray_jobs/confirmation/sequential.py), in <sweep>/confirm_top<K>_seeds_auto<max>/. On a cluster:

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        losstune-confirm s3://my-bucket/losstune/<sweep> --top 3 --seeds 5
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys

from losstune.ray_jobs.confirmation import runs as confirmation
from losstune.ray_jobs.confirmation.conclusion import run_and_conclude
from losstune.ray_jobs.cli.flags import (HelpFormatter, OneLineParser, add_min_effect, add_seeds, add_verbosity,
                                         check_at_least, check_min_effect, check_seeds, verbosity)
from losstune.ray_jobs.core.usage import AUTO, UsageError
from losstune.ray_jobs.cli.bounds import check_ray_address
from losstune.ray_jobs.core.plan import POPULATION_SCHEDULERS, SweepPlan, definition
from losstune.ray_jobs.cli.resume import documented_min_effect
from losstune.ray_jobs.results.tables import SweepFolderError, read_meta, read_trials
from losstune.ray_jobs.core.storage import absolute, exists, join, parent_and_name
from losstune.ray_jobs.core import cluster  # cluster.start_ray, cluster.fit_to_cluster: the tests stand them in
from losstune.ray_jobs.core.cluster import EXIT_RAY_START, at_a_time, started
from losstune.ray_jobs.reports.report_html import write_report_html
import optuna


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(prog="losstune-confirm", description=__doc__, formatter_class=HelpFormatter,
                                epilog="exit status: 0 the confirmation ran; 2 bad input (not a finished sweep, "
                                       "fewer healthy trials than --top, --seeds below 2), before Ray starts; 4 Ray "
                                       "could not start; 130 interrupted (Ctrl-C): no verdict; --resume continues it")
    p.add_argument("sweep", help="<storage>/<sweep name>, a finished sweep (its trials.parquet)")
    p.add_argument("--top", type=int, default=3, help="how many of the sweep's best healthy configs to rerun")
    add_seeds(p)
    p.add_argument("--max-concurrent", type=int, help="default: as many runs as the cluster fits")
    p.add_argument("--resume", action="store_true",
                   help="continue this confirmation after an interruption, or extend one of fewer --seeds")
    add_min_effect(p)
    add_verbosity(p)
    return p.parse_args(argv)


def sweep_plan(experiment: str, meta: dict, args) -> SweepPlan:
    """The sweep's plan as saved, to rerun its configs with its resources and epochs."""
    # here, not at the top: loads ray only where this runs
    from losstune.trainables.engine.driver import TrialResources

    storage, name = parent_and_name(experiment)
    return SweepPlan(**definition(meta), name=name, storage=storage, storage_arg=storage,
                     resources=TrialResources.saved(meta["resources"]), max_concurrent=args.max_concurrent,
                     verbosity=verbosity(args), min_effect=args.min_effect or documented_min_effect(meta),
                     max_seeds=args.max_seeds)


def prepare(args):
    """(plan, candidates, seeds, earlier), checked before Ray starts; earlier: (folder, runs) of a
    confirmation at fewer seeds that --resume extends, or None."""
    check_at_least(("--top", args.top, 1), ("--max-concurrent", args.max_concurrent, 1))
    check_seeds("--seeds", args.seeds, args.max_seeds)
    check_min_effect(args.min_effect)
    check_ray_address()
    experiment = absolute(args.sweep.rstrip("/"))
    try:
        meta = read_meta(experiment)
    except SweepFolderError as err:
        raise UsageError(f"SWEEP: {err}") from None
    if not exists(join(experiment, "trials.parquet")):
        raise UsageError(f"SWEEP: {experiment} has no trials.parquet yet: let the sweep finish, or run "
                         "losstune-analyze on it")
    if meta.get("scheduler") in POPULATION_SCHEDULERS:
        raise NotImplementedError(f"SWEEP: {experiment} is a {meta['scheduler']} sweep: its trials followed schedules "
                                  "that changed mid-run (column lineage), which rerunning a final config from scratch "
                                  "would not confirm")
    plan = sweep_plan(experiment, meta, args)
    try:
        trials = read_trials(experiment)
    except SweepFolderError as err:
        raise UsageError(f"SWEEP: {err}") from None
    chosen = confirmation.candidates(trials, meta, args.top)
    confirmation.check_margin(plan.min_effect, chosen[0])
    folder = join(experiment, confirmation.folder_name(plan, args.top, args.seeds))
    if exists(folder) and not args.resume:
        raise UsageError(f"--resume: {folder} exists; pass --resume to continue it, or other --top / --seeds")
    seeds = confirmation.seeds_for(meta, args.max_seeds if args.seeds == AUTO else args.seeds)
    earlier = None if not args.resume or args.seeds == AUTO else confirmation.earlier_confirmation(
        experiment, chosen, seeds, lambda count: confirmation.folder_name(plan, args.top, count))
    return plan, chosen, seeds, earlier



def seeds_flags(args) -> str:
    return f"--seeds {args.seeds}" + (f" --max-seeds {args.max_seeds}" if args.seeds == AUTO else "")


def main(argv=None) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its INFO on every in-memory study of importance
    args = parse_args(argv)
    try:
        plan, chosen, seeds, earlier = prepare(args)
    except (UsageError, NotImplementedError) as err:
        print(f"confirm: error: {err}", file=sys.stderr)
        return 2

    if not started("confirm", plan.verbosity >= 3):
        return EXIT_RAY_START
    auto = args.seeds == AUTO
    plan = cluster.fit_to_cluster(dataclasses.replace(plan, trials=len(chosen) * (3 if auto else len(seeds))))
    extending = f", adding seeds to {earlier[0]}'s {len(set(earlier[1]['seed']))}" if earlier else ""
    count = confirmation.seeds_said(auto, seeds)
    print(f"confirm {plan.name}: {len(chosen)} configs x {count}{extending}, {at_a_time(plan)}", flush=True)
    folder = join(plan.experiment, confirmation.folder_name(plan, len(chosen) - 1, args.seeds))
    try:
        print(run_and_conclude(plan, chosen, seeds, folder, auto, args.resume,
                                            earlier[1] if earlier else None))
    except (confirmation.Interrupted, KeyboardInterrupt):
        print(f"confirm {plan.name}: interrupted; no verdict from cut runs. Resume with: losstune-confirm "
              f"{shlex.quote(plan.experiment)} --top {len(chosen) - 1} {seeds_flags(args)} --resume", file=sys.stderr)
        return 130
    except UsageError as err:  # the verdict cannot be drawn; the runs are kept for --resume
        print(f"confirm: error: {err}", file=sys.stderr)
        return 2
    print(f"report: {write_report_html(plan.experiment)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
