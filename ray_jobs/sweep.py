"""losstune-sweep hdr_patch --space caps --trials 8

Tune one family over a named search space. With no arguments it runs the embedded default: an
hdr_patch sweep over `caps`, 8 trials, on a local Ray, on synthetic data. On a cluster:

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        losstune-sweep hdr_patch --space caps --trials 32 --gpus-per-worker 1 \\
        --data /mnt/data/hdr_patches.npz --storage s3://my-bucket/losstune

The family, space, config overrides and data are checked before Ray starts; a bad one is one
line naming the flag, field or file, exit status 2, and nothing written. The documented default
is always the first trial. Results land beside Tune's files in <storage>/<name>/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time

from losstune.data import DataError
from losstune.trainables.config import ConfigError, check_precision, merge, unflatten
from losstune.trainables.families import FAMILIES, check_batches_fit, load_family, make_config


STUDY_FILE = "optuna_study.journal"  # Optuna's own record of the search: states, values, params


EXIT_CODES = """exit status: 0 the sweep finished and found a best config; 1 it finished, but no trial
ended healthy at full length (every one errored, stopped unhealthy or was cut short): no best config;
2 bad input, refused before Ray starts, nothing written; 3 stopped because --storage ran out of space
(below --min-free-mb): free space, then --resume --name NAME; 130 interrupted (Ctrl-C): Tune kept its
state, and --resume --name NAME continues it."""
EXIT_OK, EXIT_NO_HEALTHY_TRIAL, EXIT_BAD_INPUT, EXIT_STORAGE_FULL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(Exception):
    """A bad flag or state; the message names it."""


def parse_args(argv=None) -> argparse.Namespace:
    """The flags, with `given`: the names of those the command line set (a resumed sweep checks
    them against its saved definition)."""
    args = make_parser().parse_args(argv)
    quiet = make_parser()
    for action in quiet._actions:  # parsed again with no defaults: only what was given remains
        action.default = argparse.SUPPRESS
    args.given = set(vars(quiet.parse_args(argv)))
    return args


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="losstune-sweep", description=__doc__, epilog=EXIT_CODES,
                                formatter_class=HelpFormatter)
    p.add_argument("family", nargs="?", default="hdr_patch", help=f"one of {', '.join(FAMILIES)}")
    add_catalogue_flags(p)
    p.add_argument("--space", help="named search space (default: the family's, e.g. caps)")
    p.add_argument("--trials", type=int, default=8, help="trials in all, the documented default first")
    p.add_argument("--search", choices=["optuna", "optuna-grouped", "random"], default="optuna",
                   help="Optuna TPE (Optuna 5's default: the parameters every trial has modelled jointly); "
                        "optuna-grouped: also those of each branch of a space that branches (e.g. hdr_patch's cap "
                        "modes) jointly; or Optuna's random sampler (same spaces, same default-first trial)")
    p.add_argument("--startup-trials", type=int,
                   help="trials TPE samples at random before it models the results (default: a quarter of "
                        "--trials, 2 to 10)")
    p.add_argument("--scheduler", choices=["asha", "none"], default="asha",
                   help="ASHA stops trials early on the family's scalar objective")
    p.add_argument("--grace-epochs", type=int,
                   help="epochs before ASHA's first stop decision (default: a quarter of the epochs); raise it when "
                        "early epochs rank trials differently from late ones")
    p.add_argument("--objective", choices=["pareto", "scalar"],
                   help="pareto (default where the family declares several objectives, e.g. lgt): "
                        "multi-objective Optuna, results mark the Pareto front; scalar: the one objective")
    p.add_argument("--epochs", type=int, help="epochs per trial (default: the family's train.epochs)")
    p.add_argument("--preset", default="", help="a named preset of the family under the search (e.g. phase1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fixed config override, e.g. --set train.batch_size=64 (repeatable)")
    p.add_argument("--data", help="data file or directory (sets data.path)")
    p.add_argument("--workers-per-trial", type=int, default=1, help="training workers (DDP ranks) per trial")
    p.add_argument("--cpus-per-worker", type=float,
                   help="default 1; on a local Ray 1 - --driver-cpus, so that a trial fills one core")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="fractions allowed, e.g. 0.25")
    p.add_argument("--driver-cpus", type=float, default=0.1, help="CPU held by each trial's driver")
    p.add_argument("--max-concurrent", type=int, help="default: as many trials as the cluster fits")
    p.add_argument("--max-failures", type=int, default=1,
                   help="failures a trial survives, of its training workers and, apart, of its driver; it resumes "
                        "from its latest checkpoint (-1: any number)")
    p.add_argument("--keep-checkpoints", type=int, default=2,
                   help="checkpoints a trial keeps by the objective, best first, beside its latest")
    p.add_argument("--storage", default="./results", help="local folder or pyarrow URI (s3://, gs://)")
    p.add_argument("--name", help="sweep name (default: <family>-<space>-<time>)")
    p.add_argument("--min-free-mb", type=float, default=MIN_FREE_MB,
                   help="stop the sweep, resumable, when a local --storage has less free space than this")
    p.add_argument("--resume", action="store_true", help="continue the sweep --name in --storage")
    p.add_argument("--seed", type=int, default=0, help="sampler seed and train.seed")
    p.add_argument("--smoke-test", action="store_true", help="tiny data and 2 epochs per trial")
    add_verbosity(p)
    return p


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help: the module's docstring as written (its first line the command), and each flag's
    default where it has one (shared with ray_jobs/train.py)."""

    def _get_help_string(self, action):
        text = action.help or ""
        worth_saying = action.default not in (None, False, "", [], argparse.SUPPRESS) and action.nargs != 0
        if worth_saying and "%(default)" not in text and (action.option_strings or action.nargs == "?"):
            text += " (default: %(default)s)"
        return text


def add_catalogue_flags(parser: argparse.ArgumentParser) -> None:
    """--list and --print-config FAMILY: what can be run, then exit (shared with ray_jobs/train.py)."""
    parser.add_argument("--list", action="store_true", help="list the families, their search spaces (and what "
                                                            "each tunes) and presets, then exit")
    parser.add_argument("--print-config", metavar="FAMILY", choices=list(FAMILIES),
                        help="print every config key of FAMILY (what --set takes), its default and its seed "
                             "section, then exit")


def print_catalogue(args) -> bool:
    """Print what --list or --print-config asked for; whether they did."""
    from losstune.ray_jobs.catalogue import catalogue, config_listing

    if args.list:
        print(catalogue())
    elif args.print_config:
        print(config_listing(args.print_config))
    return bool(args.list or args.print_config)


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    """-q / -v: how much the console shows (shared with ray_jobs/train.py)."""
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true",
                          help="only the start line, errors and the final report")
    loudness.add_argument("-v", "--verbose", action="count", default=0,
                          help="-v: also a line for every trial's start, result and end; -vv: and the training "
                               "workers' own logs")


def verbosity(args) -> int:
    """0 quiet, 1 default (a progress table of the objective and the tuned parameters), 2 -v, 3 -vv."""
    return 0 if args.quiet else 1 + min(args.verbose, 2)


def parse_set(items: list[str]) -> dict:
    """--set a.b=1 -> {'a': {'b': 1}}; values are JSON where they parse, else strings."""
    overrides: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        *parents, leaf = key.split(".")
        node = overrides
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return overrides


def flag_overrides(args) -> dict:
    """The config overrides given as flags: --set, --epochs, --data (shared with ray_jobs/train.py)."""
    overrides = parse_set(args.set)
    if args.epochs:
        overrides = merge(overrides, {"train": {"epochs": args.epochs}})
    if args.data:
        overrides = merge(overrides, {"data": {"path": os.path.abspath(args.data)}})
    return overrides


def check_at_least(*checks: tuple[str, float | None, float]) -> None:
    """Each (flag, value, low): a flag that was given must be >= low (shared with ray_jobs/train.py,
    so that a bad count fails here, before Ray starts, and not inside a trial)."""
    for flag, value, low in checks:
        if value is not None and value < low:
            raise UsageError(f"{flag}: must be >= {low}, got {value}")


def check_name(flag: str, name: str | None) -> None:
    """A run or sweep name is one folder inside --storage: no path separators, no '..'."""
    if name is not None and (not name or "/" in name or "\\" in name or name in (".", "..")):
        raise UsageError(f"{flag}: must be a plain folder name inside --storage, got {name!r}")


def check_worker_shares(cpus: float | None, gpus: float) -> None:
    """A worker needs some CPU (Ray refuses an empty bundle) and no negative GPU share."""
    if cpus is not None and cpus <= 0:
        raise UsageError(f"--cpus-per-worker: must be > 0, got {cpus}")
    check_at_least(("--gpus-per-worker", gpus, 0))


def check_counts(args) -> None:
    """The flags that count something must be positive, the resource shares not negative."""
    check_at_least(("--trials", args.trials, 1), ("--epochs", args.epochs, 1), ("--grace-epochs", args.grace_epochs, 1),
                   ("--startup-trials", args.startup_trials, 1), ("--workers-per-trial", args.workers_per_trial, 1),
                   ("--max-concurrent", args.max_concurrent, 1), ("--keep-checkpoints", args.keep_checkpoints, 1),
                   ("--max-failures", args.max_failures, -1), ("--driver-cpus", args.driver_cpus, 0),
                   ("--seed", args.seed, 0))
    check_worker_shares(args.cpus_per_worker, args.gpus_per_worker)
    check_name("--name", args.name)


def base_overrides(family, args) -> dict:
    """The overrides every trial's config is built from (trials add their sampled point): the
    preset, the smoke-test sizes, the seed, then the command line's flags, later ones winning."""
    make_config(family, preset=args.preset)  # an unknown preset fails here, before anything else
    base = dict(family.presets[args.preset]) if args.preset else {}
    if args.smoke_test:
        base = merge(base, family.smoke)
    base = merge(base, {"train": {"seed": args.seed}})
    return merge(base, flag_overrides(args))


def make_plan(args) -> dict:
    """Everything the sweep needs, validated before Ray starts. Raises ConfigError / DataError /
    UsageError with a one-line message."""
    from losstune.search_spaces import default_point, sample_points
    from losstune.trainables.driver import TrialResources
    from losstune.ray_jobs.results import absolute, exists

    storage = absolute(args.storage)
    check_counts(args)  # a resumed sweep takes its resource and checkpoint flags from the command line too
    if args.resume:
        return resumed_plan(args, storage)
    family = load_family(args.family)
    spaces = family.spaces
    space_name = args.space or family.default_space
    if space_name not in spaces:
        raise UsageError(f"--space: unknown space {space_name!r} for {args.family} (known: {', '.join(spaces)})")
    objectives = family.objectives
    if args.objective == "pareto" and not objectives:
        raise UsageError(f"--objective: {args.family} declares a single objective ({family.objective.metric})")
    pareto = objectives if args.objective != "scalar" else ()
    base = base_overrides(family, args)
    config = make_config(family, base)
    check_precision(config.train, has_gpu=args.gpus_per_worker > 0)
    space = spaces[space_name]
    point = default_point(space, config)
    # every sampled value must be valid, and every batch size fill a batch of the data
    sampled = [make_config(family, merge(base, unflatten(p))) for p in [point] + sample_points(space, 8, args.seed)]
    check_batches_fit(family.check_data(config), {
        "the sweep's config": config.train.batch_size,
        f"--space {space_name} samples it": max([c.train.batch_size for c in sampled] + space_choices(space))})
    inert = inert_weights(family, config, [point] + sample_points(space, 32, args.seed))
    if inert:
        print(f"sweep: warning: --space {space_name} tunes weights of terms that are off, so their samples change "
              f"nothing: {inert}", file=sys.stderr)
    local = not os.environ.get("RAY_ADDRESS")
    cpus = args.cpus_per_worker if args.cpus_per_worker is not None else (
        max(0.1, 1.0 - args.driver_cpus) if local else 1.0)
    resources = TrialResources(args.workers_per_trial, cpus, args.gpus_per_worker, args.driver_cpus)
    name = args.name or f"{args.family}-{space_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if exists(f"{storage}/{name}"):
        raise UsageError(f"--name: sweep {name!r} already exists in {storage}; pass --resume or a new --name")
    return {
        "family": args.family, "space": space_name, "preset": args.preset, "base": base,
        "objective": {"metric": family.objective.metric, "mode": family.objective.mode},
        "objectives": [{"metric": o.metric, "mode": o.mode} for o in pareto],
        "default_point": point, "epochs": config.train.epochs, "trials": args.trials,
        "search": args.search, "scheduler": args.scheduler, "seed": args.seed, "smoke_test": args.smoke_test,
        "startup_trials": args.startup_trials or startup_trials(args.trials),
        "grace_epochs": min(args.grace_epochs or max(1, config.train.epochs // 4), config.train.epochs),
        "resources": resources, "max_concurrent": args.max_concurrent, "max_failures": args.max_failures,
        "keep_checkpoints": args.keep_checkpoints, "storage": storage, "storage_arg": args.storage, "name": name,
        "resume": args.resume, "verbosity": verbosity(args), "min_free_mb": args.min_free_mb,
    }


def inert_weights(family, config, points: list[dict]) -> str:
    """The tuned loss weights (family.term_switches) whose term is off in every sampled point that
    sets them: off in the base config and not switched on by the point. "" if none."""
    from losstune.trainables.config import get_path

    off = {}
    for weight, switch in family.term_switches.items():
        setting = [p for p in points if weight.replace(".", "/") in p]
        if setting and not any(p.get(switch.replace(".", "/"), get_path(config, switch)) for p in setting):
            off.setdefault(switch, []).append(weight)
    return "; ".join(f"{', '.join(weights)} (--set {switch}=true turns them on)" for switch, weights in off.items())


def space_choices(space, key: tuple = ("train", "batch_size")) -> list:
    """The values a dict space's tune.choice at `key` can take (none for other spaces)."""
    node = space
    for part in key:
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return list(getattr(node, "categories", []))


def check_storage(storage: str) -> None:
    """--storage can be written, checked before Ray starts (a read-only folder, a full disk, an
    unreachable bucket would otherwise fail inside Tune, hundreds of lines later)."""
    from losstune.ray_jobs.results import check_writable

    try:
        check_writable(storage)
    except Exception as err:  # OSError from disks, pyarrow's errors from object stores
        raise UsageError(f"--storage: cannot write to {storage}: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


def startup_trials(trials: int) -> int:
    """How many trials TPE samples at random before it models the results. Optuna's default, 10,
    makes a sweep of 8 trials (the demo) random search; a quarter of the trials, 2 to 10, lets a
    short sweep's TPE start from the default and one random point."""
    return min(10, max(2, trials // 4))


# What defines a sweep, by the flag that sets it: --resume refuses a different value
DEFINING_FLAGS = {"family": "FAMILY", "space": "--space", "trials": "--trials", "search": "--search",
                  "scheduler": "--scheduler", "objective": "--objective", "grace_epochs": "--grace-epochs",
                  "startup_trials": "--startup-trials"}
DEFINING_FLAGS.update(preset="--preset", seed="--seed", smoke_test="--smoke-test")
RESOURCE_FLAGS = {"workers_per_trial": "workers", "cpus_per_worker": "cpus_per_worker",
                  "gpus_per_worker": "gpus_per_worker", "driver_cpus": "driver_cpus"}


def check_resume_flags(args, meta: dict) -> None:
    """A resumed sweep runs its saved definition: a flag given with --resume must agree with it.
    (--trials cannot grow a sweep: Tune restores its search with the saved count.)"""
    for dest, flag in DEFINING_FLAGS.items():
        if dest not in args.given:
            continue
        saved = meta.get(dest)
        if dest == "smoke_test" and saved is None:
            continue  # a sweep saved before smoke_test was: its base config is checked below
        if dest == "objective":  # saved as the objectives list; "pareto" where there are several
            saved, given = ("pareto" if meta.get("objectives") else "scalar"), args.objective
        else:
            given = getattr(args, dest)
        if given != saved:
            raise UsageError(f"{flag}: sweep {args.name!r} was started with {saved!r}, got {given!r}; a resumed sweep "
                             "keeps its own definition (start a new sweep to change it)")
    # --smoke-test's sizes are not compared here: the sweep's own --epochs or --set may have
    # overridden them, and the flag itself was compared above
    for path in differing_paths(flag_overrides(args), meta["base"]):
        flag = {"train.epochs": "--epochs", "data.path": "--data"}.get(path, "--set")
        raise UsageError(f"{flag}: {path} differs from the config sweep {args.name!r} was started with; a resumed "
                         "sweep keeps its own config (start a new sweep to change it)")


def differing_paths(overrides: dict, saved: dict, prefix: str = "") -> list[str]:
    """The dotted paths at which the nested `overrides` set a value `saved` does not hold."""
    paths = []
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            paths += differing_paths(value, saved.get(key) if isinstance(saved.get(key), dict) else {}, f"{path}.")
        elif saved.get(key, object()) != value:
            paths.append(path)
    return paths


def resumed_plan(args, storage: str) -> dict:
    """--resume: the sweep's own saved definition; only resource and checkpoint flags may change."""
    from losstune.ray_jobs.results import META_FILE, SweepFolderError, exists, read_meta
    from losstune.trainables.driver import TrialResources

    if not args.name:
        raise UsageError("--resume: needs --name of the sweep to continue")
    if not exists(f"{storage}/{args.name}/{META_FILE}"):
        raise UsageError(f"--resume: no sweep {args.name!r} in {storage}")
    try:
        meta = read_meta(f"{storage}/{args.name}")
    except SweepFolderError as err:
        raise UsageError(f"--resume: {err}") from None
    check_resume_flags(args, meta)
    resources = dataclasses.replace(TrialResources(**meta["resources"]), **{
        field: getattr(args, dest) for dest, field in RESOURCE_FLAGS.items() if dest in args.given})
    return {k: meta.get(k, LATER_KEYS[k]) if k in LATER_KEYS else meta[k] for k in SWEEP_KEYS} | {
        "resources": resources, "max_concurrent": args.max_concurrent,
        "max_failures": args.max_failures, "keep_checkpoints": args.keep_checkpoints, "storage": storage,
        "storage_arg": args.storage, "name": args.name, "resume": True, "verbosity": verbosity(args),
        "min_free_mb": args.min_free_mb}


def start_ray(verbose: bool) -> None:
    """Join the cluster in RAY_ADDRESS (as `ray job submit` sets it), else start a local Ray of our
    own on this machine's cores, never one found on the machine; reuse a Ray this process already
    has (a test's, a caller's)."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=verbose)
    else:
        start_local_ray(verbose)


PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"  # Ray Train's switch, read by its controller


def start_local_ray(verbose: bool = False) -> None:
    """A Ray of this machine's cores, started in this process, whose workers know its address.

    When a trial is stopped inside TorchTrainer.fit() (ASHA, a Tune stopper), its Train controller
    dies with it, and Train's PlacementGroupCleaner frees the training worker's CPUs after asking
    the state API whether the controller is alive. It asks without an address, which Ray resolves
    by looking for Ray instances on the machine: with a second one running (another sweep, a test
    run) that lookup fails ("Found multiple active Ray instances"), the placement group is never
    removed, and every later trial waits for CPUs that never come back. RAY_ADDRESS in every
    worker makes the lookup find this Ray.

    Train's preemption watcher is off here (unless the user set it): it is one more actor, a fresh
    process importing Ray Train, per trial, that watches for nodes being drained (spot instances
    reclaimed), and a Ray of this one machine has no node to drain. Clusters keep it.

    address="local": with no address, ray.init() joins a Ray that someone else's `ray start`
    left running on the machine (and then refuses num_cpus); a sweep run without RAY_ADDRESS must
    never run inside another user's cluster."""
    import ray

    # Nested, so that it is shipped by value: a worker runs it before it can import this project.
    def pin_ray_address() -> None:
        import os

        import ray

        os.environ.setdefault("RAY_ADDRESS", ray.get_runtime_context().gcs_address)

    watcher = os.environ.get(PREEMPTION_WATCHER_ENV, "0")
    ray.init(address="local", num_cpus=os.cpu_count(), log_to_driver=verbose,
             runtime_env={"worker_process_setup_hook": pin_ray_address, "env_vars": {PREEMPTION_WATCHER_ENV: watcher}})


DRIVER_RESOURCE = "losstune_driver"  # cluster.yaml gives the head node this resource


def check_cluster(plan) -> int:
    """Fit the sweep to the cluster it runs on; returns how many trials run at once.

    Drivers go to the head when the cluster offers DRIVER_RESOURCE. A worker that fits on no
    node, or a relative --storage on several nodes, is a UsageError now rather than a trial
    pending forever or results scattered over nodes' disks.
    """
    import ray

    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    have = ray.cluster_resources()
    if DRIVER_RESOURCE in have and not plan["resources"].driver_resource:
        plan["resources"] = dataclasses.replace(plan["resources"], driver_resource=DRIVER_RESOURCE)
    resources = plan["resources"]
    for kind, amount in resources.per_worker().items():
        largest = max(node.get(kind, 0.0) for node in nodes)
        if amount > largest + 1e-9:
            flag = "--gpus-per-worker" if kind == "GPU" else "--cpus-per-worker"
            raise UsageError(f"{flag}: a training worker needs {amount:g} {kind}, the largest node has {largest:g}")
    need = resources.per_trial()
    for kind, amount in need.items():
        if amount > have.get(kind, 0.0) + 1e-9:
            raise UsageError(f"--workers-per-trial: one trial needs {amount:g} {kind}, the cluster has "
                             f"{have.get(kind, 0.0):g}")
    raw = plan.get("storage_arg", "")
    if len(nodes) > 1 and raw and "://" not in raw and not os.path.isabs(raw):
        raise UsageError(f"--storage: {raw!r} is a relative local path on a {len(nodes)}-node cluster; give "
                         "s3://..., gs://... or an absolute path on shared storage (NFS)")
    fits = min(math.floor(have.get(kind, 0.0) / amount + 1e-9) for kind, amount in need.items() if amount > 0)
    return plan["max_concurrent"] or max(1, min(fits, plan["trials"]))


def build_tuner(plan, concurrency: int, callbacks=(), stop=None):
    """The Tuner of a plan; `callbacks` and `stop` (a Tune Stopper) are for benchmarks."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from losstune.search_spaces import optuna_space
    from losstune.trainables.driver import DefaultKeepingASHA, HealthAwareOptunaSearch, trainable

    experiment = f"{plan['storage']}/{plan['name']}"
    fn = trainable(load_family(plan["family"]), plan["base"], plan["resources"], f"{experiment}/trainer_runs",
                   max_failures=plan["max_failures"], num_to_keep=plan["keep_checkpoints"])
    metric, mode = plan["objective"]["metric"], plan["objective"]["mode"]
    # Our TensorBoardCallback writes the metrics under their own names; Tune's automatic TBX logger
    # would add a second copy under ray/tune/. JSON and CSV stay: analyze.py rebuilds from them.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    # Tune's console interface that takes a reporter of our own (ray_jobs.progress); the newer
    # one shows neither the objective nor the sampled parameters, and a box of every metric per trial
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    run_config = tune.RunConfig(name=plan["name"], storage_path=plan["storage"], stop=stop,
                                verbose=min(plan.get("verbosity", 1), 2),
                                progress_reporter=progress_table(plan) if plan.get("verbosity", 1) else None,
                                callbacks=[JsonLoggerCallback(), CSVLoggerCallback(), *callbacks],
                                # A trial whose driver is lost (its node gone, on a cluster without
                                # losstune_driver) restarts; its TorchTrainer resumes from the checkpoint.
                                failure_config=tune.FailureConfig(max_failures=plan["max_failures"]))
    if plan["resume"]:
        return tune.Tuner.restore(experiment, trainable=fn, resume_errored=True)
    space = load_family(plan["family"]).spaces[plan["space"]]
    # Multi-objective: Optuna samples for the Pareto front (its TPE handles several objectives);
    # Tune itself and ASHA still rank by the scalar objective.
    many = plan.get("objectives") or []
    searched_metric = [o["metric"] for o in many] if many else metric
    searched_mode = [o["mode"] for o in many] if many else mode
    searcher = HealthAwareOptunaSearch(space=optuna_space(space), metric=searched_metric, mode=searched_mode,
                                       sampler=make_sampler(plan), full_length=plan["epochs"],
                                       points_to_evaluate=[plan["default_point"]],
                                       study_name=plan["name"], storage=study_storage(plan))
    scheduler = None
    if plan["scheduler"] == "asha":
        scheduler = DefaultKeepingASHA(plan["default_point"], time_attr="training_iteration",
                                       max_t=plan["epochs"],
                                       grace_period=plan.get("grace_epochs") or max(1, plan["epochs"] // 4),
                                       reduction_factor=3)
    tune_config = tune.TuneConfig(metric=metric, mode=mode, search_alg=searcher, scheduler=scheduler,
                                  num_samples=plan["trials"], max_concurrent_trials=concurrency,
                                  # A finished trial's driver actor runs the next trial: its process
                                  # start and imports (~3.6 s here) are paid once per slot. Not with
                                  # ASHA: a trial it stops is still inside TorchTrainer.fit(), so Tune
                                  # cannot reset the actor (the trial errors and its run lingers).
                                  reuse_actors=scheduler is None)
    return tune.Tuner(fn, tune_config=tune_config, run_config=run_config)


def progress_table(plan):
    """The console's table: each trial's epoch, objective(s) and stop reason, and the parameters
    the space tunes (those of the default's branch and of sampled ones). -v: at every change."""
    from losstune.ray_jobs.progress import TrialTable
    from losstune.search_spaces import sample_points

    space = load_family(plan["family"]).spaces[plan["space"]]
    points = [plan["default_point"], *sample_points(space, 16, plan["seed"])]
    tuned = list(dict.fromkeys(key for point in points for key in point))
    objectives = [plan["objective"], *[o for o in plan.get("objectives") or [] if o != plan["objective"]]]
    return TrialTable(objectives, tuned, plan["default_point"], plan["epochs"],
                      every_s=0 if plan.get("verbosity", 1) >= 2 else 30)


def make_sampler(plan):
    import optuna

    if plan["search"] == "optuna":
        return optuna.samplers.TPESampler(seed=plan["seed"], n_startup_trials=plan["startup_trials"])
    if plan["search"] == "optuna-grouped":
        # Optuna 5's TPE is already multivariate (single objective) with a constant liar, but on a
        # space that branches it models jointly only the parameters every trial has; the others it
        # samples one by one. `group` models each set of parameters that always come together jointly.
        return optuna.samplers.TPESampler(seed=plan["seed"], n_startup_trials=plan["startup_trials"],
                                          multivariate=True, group=True)
    return optuna.samplers.RandomSampler(seed=plan["seed"])


SWEEP_KEYS = ("family", "space", "preset", "base", "objective", "objectives", "default_point", "epochs", "trials",
              "search", "scheduler", "seed", "grace_epochs", "startup_trials", "smoke_test")
# Keys added after the first sweeps were saved, and the value those sweeps ran with (None: unknown)
LATER_KEYS = {"objectives": [], "grace_epochs": None, "startup_trials": 10, "smoke_test": None}


def study_journal(plan) -> str:
    """Where the Optuna study is journaled: in the sweep's folder when storage is local, else in a
    local folder, copied to the sweep's storage when the sweep ends."""
    if "://" in plan["storage"]:
        return os.path.expanduser(f"~/.losstune/{plan['name']}/{STUDY_FILE}")
    return f"{plan['storage']}/{plan['name']}/{STUDY_FILE}"


def study_storage(plan):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = study_journal(plan)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return JournalStorage(JournalFileBackend(path))


def fail_orphaned_trials(plan) -> int:
    """Once the sweep is over no Optuna trial can still be running: one that is was asked for by a
    driver killed before Tune saved the trial (a --resume then never runs it). Record it as FAIL,
    so the study holds no trial that looks alive. Returns how many."""
    import optuna

    study = optuna.load_study(study_name=plan["name"], storage=study_storage(plan))
    orphans = [t.number for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING])]
    for number in orphans:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    return len(orphans)


def metadata(plan) -> dict:
    """What defines the sweep, saved beside it so --resume and analyze need nothing else."""
    return {k: plan[k] for k in SWEEP_KEYS} | {
        "storage": plan["storage"], "name": plan["name"], "resources": dataclasses.asdict(plan["resources"])}


def run(plan) -> int:
    from losstune.ray_jobs import results
    from losstune.trainables.driver import DiskGuard

    start_ray(plan["verbosity"] >= 3)
    concurrency = check_cluster(plan)
    experiment = f"{plan['storage']}/{plan['name']}"
    meta = metadata(plan)
    if not plan["resume"]:
        results.write_bytes(f"{experiment}/{results.META_FILE}", json.dumps(meta, indent=2).encode())
    print(f"sweep {plan['name']}: {plan['trials']} trials of {plan['family']} over '{plan['space']}', "
          f"{concurrency} at a time, results in {experiment}", flush=True)
    started = time.time()
    guard = DiskGuard(plan["storage"], plan.get("min_free_mb", MIN_FREE_MB))  # stops as Ctrl-C does
    tuner = build_tuner(plan, concurrency, callbacks=[guard])
    with CtrlC() as ctrl_c:
        grid = tuner.fit()
    if guard.tripped:
        print(f"sweep {plan['name']}: stopped: {guard.tripped}. Tune saved its state; free space, then resume with: "
              f"{resume_command(plan)}", file=sys.stderr)
        return EXIT_STORAGE_FULL
    if ctrl_c.pressed:
        # The cut trials' Optuna trials stay RUNNING (fail_orphaned_trials would mark them FAIL, and a
        # resumed trial could then never report: UpdateFinishedTrialError), and no results are written,
        # which would show them as stopped early.
        print(f"sweep {plan['name']}: interrupted; Tune saved its state. Resume with: {resume_command(plan)}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    fail_orphaned_trials(plan)
    trials, history = results.tables(grid, meta, experiment)
    written = results.write_all(experiment, trials, history, meta)
    if "://" in plan["storage"]:
        with open(study_journal(plan), "rb") as f:
            results.write_bytes(f"{experiment}/{STUDY_FILE}", f.read())
    print(results.report(trials, meta, written))
    print(f"sweep wall time: {time.time() - started:.0f} s")
    if results.best_trial(trials) is None:
        print(f"sweep: {plan['name']}: no healthy finished trial (every trial errored, stopped unhealthy or was cut "
              f"short); exit {EXIT_NO_HEALTHY_TRIAL}", file=sys.stderr)
        return EXIT_NO_HEALTHY_TRIAL
    return EXIT_OK


def resume_command(plan) -> str:
    return f"losstune-sweep --resume --name {plan['name']} --storage {plan['storage_arg']}"


MIN_FREE_MB = 200.0  # --min-free-mb: what a few checkpoints and Tune's state need to be written whole


class CtrlC:
    """Ctrl-C during Tuner.fit(), seen by the sweep: Tune's own SIGINT handler ends the run after
    saving its state, then marks the cut trials TERMINATED, so nothing after fit() can tell an
    interrupted sweep from a finished one. This handler takes SIGINT instead (Tune's switch
    TUNE_DISABLE_SIGINT_HANDLER), notes it, and asks for the same graceful stop through Tune's
    other stop signal, SIGUSR1; a second Ctrl-C stops at once (KeyboardInterrupt)."""

    def __init__(self):
        self.pressed = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, signum, frame) -> None:
        # Tune registers SIGUSR1 only once fit() has set up; before that, stop at once
        if self.pressed or signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, signal.SIG_IGN, None):
            raise KeyboardInterrupt
        self.pressed = True
        print("sweep: Ctrl-C: stopping once Tune has saved its state (Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGUSR1)


def main(argv=None) -> int:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # Tune reports trials; Optuna's INFO repeats it
    args = parse_args(argv)
    if print_catalogue(args):
        return EXIT_OK
    try:
        plan = make_plan(args)
        check_storage(plan["storage"])  # last: it creates the folder
    except (ConfigError, DataError, UsageError, NotImplementedError) as err:
        print(f"sweep: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return run(plan)
    except (ConfigError, DataError, UsageError, NotImplementedError) as err:  # found once Ray runs (the cluster)
        print(f"sweep: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # a second Ctrl-C, which Tune passes on: its last saved state stands
        print(f"sweep {plan['name']}: interrupted. Resume with: {resume_command(plan)}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
