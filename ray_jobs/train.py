"""losstune-train hdr_patch --config results/<sweep>/best_config.json

One TorchTrainer run of one config: the documented default, a preset (`--preset phase1`), or a
sweep's best config, with `--set KEY=VALUE` overrides on top. Same metrics and checkpoints as a
sweep's trials; run again with the same --name to resume from the latest checkpoint. On a cluster:

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        losstune-train hdr_patch --config best_config.json --gpus-per-worker 1 \\
        --storage s3://my-bucket/losstune
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

from losstune.data import DataError
from losstune.ray_jobs.cli.flags import (HelpFormatter, OneLineParser, add_catalogue_flags, add_verbosity,
                                         check_at_least, check_name, check_storage, check_worker_shares,
                                         flag_overrides, not_empty, print_catalogue, read_config_file)
from losstune.ray_jobs.core.usage import UsageError, finite_float
from losstune.ray_jobs.cli.bounds import (MAX_EPOCHS, check_data_path, check_local_resources, check_ray_address,
                                      check_storage_text, check_upper_bounds)
from losstune.trainables.config import ConfigError, merge, to_dict
from losstune.trainables.family_api import check_batches_fit, checked_data, make_config
from losstune.trainables.registry import family_names, load_family
from losstune.trainables.checkpoint_score import CHECKPOINT_SCORE, best_scored
from losstune.trainables.engine.loop_config import check_precision
from losstune.ray_jobs.cli.resume import differing_paths
from losstune.ray_jobs.core import cluster  # cluster.start_ray, cluster.fit_to_cluster: the tests stand them in
from losstune.ray_jobs.core.cluster import EXIT_RAY_START, RayStartError
from losstune.ray_jobs.core.storage import absolute, as_json, exists, join, read_json, write_bytes
from losstune.trainables.engine.shipped_data import ship


def parse_args(argv=None):
    p = OneLineParser(prog="losstune-train", description=__doc__, formatter_class=HelpFormatter,
                                epilog="exit status: 0 the run finished healthy; 1 it stopped unhealthy (a health "
                                       "check's stop_reason); 2 bad input, refused before Ray starts; 4 Ray could not start")
    p.add_argument("family", nargs="?", default="hdr_patch", help=f"one of {', '.join(family_names())}")
    add_catalogue_flags(p)
    p.add_argument("--config", type=not_empty, help="a JSON config (e.g. a sweep's best_config.json)")
    p.add_argument("--preset", type=not_empty, help="a named preset of the family (see --list)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override on top of --config, e.g. --set train.batch_size=64 (repeatable; keys: "
                        "--print-config FAMILY)")
    p.add_argument("--epochs", type=int, help="epochs (default: the config's train.epochs)")
    p.add_argument("--data", type=not_empty, help="data file or folder (sets data.path)")
    p.add_argument("--workers", type=int, default=1, help="training workers (DDP ranks)")
    p.add_argument("--cpus-per-worker", type=finite_float, default=1.0, help="CPUs each worker holds")
    p.add_argument("--gpus-per-worker", type=finite_float, default=0.0, help="GPUs each worker holds; fractions allowed")
    p.add_argument("--max-failures", type=int, default=1, help="worker failures the run survives (-1: any number)")
    p.add_argument("--keep-checkpoints", type=int, default=2,
                   help="checkpoints kept by the objective, best first, beside the latest (a run checkpoints "
                        "every epoch)")
    p.add_argument("--storage", default="./results", help="local folder or pyarrow URI (s3://, gs://)")
    p.add_argument("--name", help="run name (default: <family>-train-<time>); an existing one resumes")
    p.add_argument("--smoke-test", action="store_true", help="the family's tiny data and 2 epochs")
    add_verbosity(p)
    return p.parse_args(argv)


def check_flags(args) -> None:
    """Counts and resource shares, checked before Ray starts: Ray would take --workers 0 for its
    local mode (no checkpoints in --storage) and fail inside the run on an empty CPU share."""
    check_at_least(("--epochs", args.epochs, 1), ("--workers", args.workers, 1),
                   ("--max-failures", args.max_failures, -1), ("--keep-checkpoints", args.keep_checkpoints, 1))
    check_upper_bounds(("--epochs", args.epochs, MAX_EPOCHS))
    check_worker_shares(args.cpus_per_worker, args.gpus_per_worker)
    check_name("--name", args.name)
    check_storage_text(args.storage)
    check_data_path(args.data)
    check_ray_address()
    # here, not at the top: loads torch, ray, pandas only where this runs
    from losstune.trainables.engine.driver import TrialResources

    check_local_resources(TrialResources(args.workers, args.cpus_per_worker, args.gpus_per_worker, 0.0))


def overrides_from(args, family) -> dict:
    """--config, then --smoke-test's sizes, then --set / --epochs / --data, later ones winning."""
    overrides = read_config_file(args.config) if args.config else {}
    if args.smoke_test:
        overrides = merge(overrides, family.smoke)
    return merge(overrides, flag_overrides(args))


def main(argv=None) -> int:
    args = parse_args(argv)
    if print_catalogue(args):
        return 0
    try:
        check_flags(args)
        family = load_family(args.family)
        config = make_config(family, overrides_from(args, family), args.preset or "")
        check_precision(config.train, has_gpu=args.gpus_per_worker > 0)
        check_batches_fit(checked_data(family, config), {"the run's config": config.train.batch_size})
        check_resumed_run(absolute(args.storage), args.name, args.family, to_dict(config))
        check_storage(absolute(args.storage))
    except (ConfigError, DataError, UsageError, NotImplementedError) as err:
        print(f"train: error: {err}", file=sys.stderr)
        return 2

    try:
        return run(args, family, config)
    except RayStartError as err:
        print(f"train: error: {err}", file=sys.stderr)
        return EXIT_RAY_START


def run(args, family, config) -> int:
    # here, not at the top: loads torch, ray, pandas only where this runs
    from ray.util.queue import Queue

    from losstune.ray_jobs.search.progress import EpochLines, print_lines
    from losstune.trainables.engine.driver import TensorBoardCallback, TrialResources, make_trainer
    from losstune.trainables.engine.ray_workarounds import poll_train_workers_often

    cluster.start_ray(args.verbose >= 2)
    poll_train_workers_often()
    storage = absolute(args.storage)
    name = args.name or f"{args.family}-train-{time.strftime('%Y%m%d-%H%M%S')}"
    resources = TrialResources(args.workers, args.cpus_per_worker, args.gpus_per_worker, 0.0)
    callbacks = [TensorBoardCallback(os.path.join(storage, name, "tensorboard"), family.tags)] if "://" not in storage else []
    objective = family.objective_of(config)
    lines = None if args.quiet else Queue(actor_options={"num_cpus": 0})
    if lines is not None:
        callbacks.append(EpochLines(lines, objective.metric, "train/loss", config.train.epochs))
    print(f"train {name}: {args.family}, {config.train.epochs} epochs, results in {join(storage, name)}", flush=True)
    # the whole config, preset folded in: workers rebuild it from this dict alone
    overrides = to_dict(config)
    write_bytes(join(storage, name, RUN_FILE), json.dumps(as_json({"family": args.family, "config": overrides}),
                                                          indent=2).encode())
    shipped = ship(overrides)
    if shipped.summary():
        print(shipped.summary(), flush=True)
    trainer = make_trainer(family, overrides, resources, name, storage, callbacks, args.max_failures,
                           args.keep_checkpoints, shipped=shipped)
    with print_lines(lines) if lines is not None else contextlib.nullcontext():
        result = trainer.fit()
    metrics = result.metrics or {}
    shown = ("val/", "train/loss", "epoch", "stop")
    print(json.dumps({k: v for k, v in metrics.items() if k.startswith(shown)}, indent=2))
    print(f"latest checkpoint: {result.checkpoint.path if result.checkpoint else None}")
    best = best_checkpoint(result.best_checkpoints or [], objective.mode)
    if best:
        checkpoint, scored = best
        print(f"best checkpoint: {checkpoint.path} ({objective.metric} {scored[CHECKPOINT_SCORE]:.6g} "
              f"at epoch {scored['epoch']})")
    return 1 if metrics.get("stop_reason") else 0


RUN_FILE = "losstune_train.json"  # what a run trained: its family and whole config, for --name to resume it


def check_resumed_run(storage: str, name: str | None, family: str, config: dict) -> None:
    """--name of an existing folder resumes the run there, which must be a train run of this family
    and config: lgt trained into an hdr_patch sweep's folder, a state-dict traceback came after Ray
    started, and a changed --set was silently ignored."""
    # here, not at the top: loads torch, optuna, scipy and more only where this runs
    from losstune.ray_jobs.results.tables import META_FILE

    folder = join(storage, name) if name else ""
    if not name or not exists(folder):
        return
    if exists(join(folder, META_FILE)):
        raise UsageError(f"--name: {folder} is a sweep's folder, not a train run; give another --name")
    if not exists(join(folder, RUN_FILE)):
        return  # a run from before RUN_FILE: what it trained is not recorded
    saved = read_json(join(folder, RUN_FILE))
    if saved.get("family") != family:
        raise UsageError(f"--name: {folder} trained {saved.get('family')!r}, not {family!r}; give another --name")
    changed = differing_paths(as_json(config), saved.get("config", {}))
    if changed:
        raise UsageError(f"--name: {folder} was trained with another config ({', '.join(changed[:3])} differ); a "
                         "resumed run keeps its config: give a new --name")


def best_checkpoint(kept: list, mode: str):
    """The (checkpoint, metrics) of `kept` that Ray ranks best, among those that have a score."""
    return best_scored(((m.get(CHECKPOINT_SCORE), (c, m)) for c, m in kept), mode)


if __name__ == "__main__":
    sys.exit(main())
