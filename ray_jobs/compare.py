"""losstune-compare hdr_patch default phase1 --seeds 5     (or --seeds auto)

Any configs of one family against the first, at N training seeds each (the same seeds for every
config, so the comparison is paired), through the sweep's trial function: the statistics,
verdicts, files, report and load_sweep reading of a confirmation (losstune-confirm). Each config
is `default` (the documented default), a preset name (phase1), presets joined by + (small+sam),
or a JSON config file (a sweep's best_config.json), optionally named: robust=default. --set
KEY=VALUE changes every config; --set LABEL:KEY=VALUE one of them (its label: the name given,
else the config as written, or the file's name without .json). Results:
<storage>/<name>/compare_seeds<N>/confirm.parquet, confirm_summary.parquet and report.html.
`--resume --name NAME --seeds M` continues an interrupted comparison, or adds seeds to one of fewer.
`--seeds auto` adds seeds in rounds until every config is decided (losstune-confirm --help), in
<storage>/<name>/compare_seeds_auto<max>/.
On a cluster:

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        losstune-compare hdr_patch default phase1 results/s/best_config.json --seeds 5 --storage s3://bucket/lt
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from losstune.data import DataError
from losstune.ray_jobs.confirmation import runs as confirmation
from losstune.ray_jobs.confirmation.conclusion import run_and_conclude
from losstune.ray_jobs.cli.compare_configs import build_candidates
from losstune.ray_jobs.cli.flags import (HelpFormatter, OneLineParser, add_min_effect, add_seeds, add_verbosity,
                                         check_at_least, check_min_effect, check_seeds, check_name, check_storage,
                                         check_storage_answers, check_worker_shares, not_empty, verbosity)
from losstune.ray_jobs.core.usage import AUTO, UsageError
from losstune.ray_jobs.cli.bounds import (MAX_EPOCHS, MAX_SEED, add_resource_flags, check_ray_address, trial_resources,
                                      check_storage_text, check_upper_bounds)
from losstune.ray_jobs.core.plan import SweepPlan, metadata
from losstune.ray_jobs.core.storage import absolute, as_json, exists, join
from losstune.trainables.config import ConfigError, unflatten
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import family_names, load_family
from losstune.ray_jobs.core import storage
from losstune.ray_jobs.core import cluster  # cluster.start_ray, cluster.fit_to_cluster: the tests stand them in
from losstune.ray_jobs.core.cluster import EXIT_RAY_START, at_a_time, started
from losstune.ray_jobs.core.provenance import provenance
from losstune.ray_jobs.reports.report_html import write_report_html
from losstune.ray_jobs.results import tables as results
from losstune.ray_jobs.results.tables import read_meta

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 130


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(prog="losstune-compare", description=__doc__, formatter_class=HelpFormatter,
                                epilog="exit status: 0 the comparison ran; 2 bad input (an unknown preset, a file of "
                                       "another family, fewer than 2 configs, --seeds below 2), before Ray starts, "
                                       "nothing written; 4 Ray could not start; 130 interrupted (Ctrl-C): no verdict; --resume "
                                       "continues it")
    families = family_names()  # built-in and installed (an entry-point scan each time)
    p.add_argument("family", choices=families, metavar="FAMILY", help=f"one of {', '.join(families)}")
    p.add_argument("configs", nargs="+", metavar="CONFIG",
                   help="default, a preset name, presets joined by + (small+sam), or a JSON config file, each "
                        "optionally LABEL=CONFIG; the first is the reference")
    add_seeds(p)
    p.add_argument("--set", action="append", default=[], metavar="[LABEL:]KEY=VALUE",
                   help="a config change for every config, or with LABEL: for that one (repeatable)")
    p.add_argument("--epochs", type=int, help="epochs per run (default: the configs' train.epochs)")
    p.add_argument("--data", type=not_empty, help="data file or directory (sets data.path)")
    p.add_argument("--smoke-test", action="store_true", help="tiny data and 2 epochs per run")
    p.add_argument("--seed", type=int, default=0, help="the runs train at seeds SEED+1 .. SEED+N")
    add_resource_flags(p, "run")
    p.add_argument("--max-concurrent", type=int, help="default: as many runs as the cluster fits")
    p.add_argument("--max-failures", type=int, default=1, help="failures a run survives, resuming from its checkpoint")
    p.add_argument("--storage", default="./results", help="local folder or pyarrow URI (s3://, gs://)")
    p.add_argument("--name", help="comparison name (default: compare-<family>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue --name, or add seeds to it")
    add_min_effect(p)
    add_verbosity(p)
    return p.parse_args(argv)


def make_plan(args, family, chosen) -> SweepPlan:
    check_seeds("--seeds", args.seeds, args.max_seeds)
    check_at_least(("--epochs", args.epochs, 1), ("--seed", args.seed, 0),
                   ("--workers-per-trial", args.workers_per_trial, 1), ("--max-concurrent", args.max_concurrent, 1),
                   ("--max-failures", args.max_failures, -1), ("--driver-cpus", args.driver_cpus, 0))
    check_upper_bounds(("--epochs", args.epochs, MAX_EPOCHS), ("--seed", args.seed, MAX_SEED))
    check_worker_shares(args.cpus_per_worker, args.gpus_per_worker)
    check_name("--name", args.name)
    check_min_effect(args.min_effect)
    check_storage_text(args.storage)
    check_ray_address()
    config = make_config(family, unflatten(chosen[0].point))
    objective = family.objective_of(config)
    resources = trial_resources(args)
    return SweepPlan(
        family=args.family, space="", preset="", base={"train": {"seed": args.seed}},
        objective={"metric": objective.metric, "mode": objective.mode}, objectives=[], default_point={},
        epochs=config.train.epochs, trials=len(chosen) * (3 if args.seeds == AUTO else args.seeds), search="none",
        scheduler="none", seed=args.seed,
        grace_epochs=None, startup_trials=0, smoke_test=args.smoke_test,
        name=args.name or f"compare-{args.family}-{time.strftime('%Y%m%d-%H%M%S')}", storage=absolute(args.storage),
        storage_arg=args.storage, resources=resources,
        max_concurrent=args.max_concurrent, max_failures=args.max_failures, resume=args.resume,
        verbosity=verbosity(args), min_effect=args.min_effect or objective.min_effect, max_seeds=args.max_seeds)


def folder_for(count: int | str, max_seeds: int = 0) -> str:
    return f"compare_seeds_auto{max_seeds}" if count == AUTO else f"compare_seeds{count}"


def prepare(args):
    """(plan, candidates, seeds, earlier) checked before Ray starts, nothing written."""
    family = load_family(args.family)
    check_seeds("--seeds", args.seeds, args.max_seeds)
    chosen = build_candidates(family, args)
    plan = make_plan(args, family, chosen)
    meta = {"base": plan.base}
    seeds = confirmation.seeds_for(meta, args.max_seeds if args.seeds == AUTO else args.seeds)
    folder = join(plan.experiment, folder_for(args.seeds, args.max_seeds))
    check_storage_answers(plan.storage)
    if not args.resume:
        if exists(plan.experiment):
            raise UsageError(f"--name: {plan.experiment} exists; pass --resume to continue it, or a new --name")
        return plan, chosen, seeds, None
    if not args.name or not exists(plan.experiment):
        raise UsageError(f"--resume: needs --name of an existing comparison in {plan.storage}")
    saved = read_meta(plan.experiment).get("configs")
    if saved != as_json(configs_of(chosen)):
        raise UsageError(f"--resume: {plan.experiment} compared other configs; give the same CONFIGs and --set")
    earlier = None if exists(folder) or args.seeds == AUTO else confirmation.earlier_confirmation(
        plan.experiment, chosen, seeds, folder_for)
    return plan, chosen, seeds, earlier


def configs_of(chosen) -> dict:
    return {c.config_id: c.point for c in chosen}


def write_meta(plan: SweepPlan, chosen) -> None:
    meta = metadata(plan) | {"kind": "compare", "configs": as_json(configs_of(chosen)),
                             "provenance": provenance(sys.argv, [], plan.family)}
    storage.write_bytes(join(plan.experiment, results.META_FILE), json.dumps(as_json(meta), indent=2).encode())


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        plan, chosen, seeds, earlier = prepare(args)
        check_storage(plan.storage)
    except (UsageError, ConfigError, DataError) as err:
        print(f"compare: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT

    if not started("compare", plan.verbosity >= 3):
        return EXIT_RAY_START
    auto = args.seeds == AUTO
    plan = cluster.fit_to_cluster(plan)
    if not args.resume:
        write_meta(plan, chosen)
    folder = join(plan.experiment, folder_for(args.seeds, args.max_seeds))
    count = confirmation.seeds_said(auto, seeds)
    print(f"compare {plan.name}: {len(chosen)} configs x {count}, {at_a_time(plan)}, results in {folder}", flush=True)
    try:
        print(run_and_conclude(plan, chosen, seeds, folder, auto, args.resume,
                                            earlier[1] if earlier else None))
    except (confirmation.Interrupted, KeyboardInterrupt):
        print(f"compare {plan.name}: interrupted; no verdict from cut runs. Resume with: the same command and "
              f"--resume --name {plan.name}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as err:  # the verdict cannot be drawn; the runs are kept for --resume
        print(f"compare: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"report: {write_report_html(plan.experiment)}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
