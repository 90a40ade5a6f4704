"""The sweep's flags and exit codes, as `losstune-sweep --help` shows them. Checked and made into a
SweepPlan by ray_jobs/cli/sweep_flags.py."""

from __future__ import annotations

import argparse

from losstune.ray_jobs.cli.bounds import add_resource_flags
from losstune.ray_jobs.cli.flags import (HelpFormatter, OneLineParser, add_catalogue_flags, add_min_effect, add_seeds,
                                         add_verbosity, not_empty)
from losstune.ray_jobs.core.plan import MIN_FREE_MB
from losstune.ray_jobs.core.usage import finite_float
from losstune.trainables.registry import family_names


EXIT_CODES = """exit status: 0 the sweep finished and found a best config; 1 it finished, but no trial
ended healthy at full length (every one errored, stopped unhealthy or was cut short): no best config;
2 bad input, refused before Ray starts, nothing written; 3 stopped because --storage ran out of space
(below --min-free-mb): free space, then --resume --name NAME; 4 Ray could not start (tried 3 times;
an overloaded machine) or be joined; 130 interrupted (Ctrl-C): Tune kept its state, and --resume
--name NAME continues it."""
EXIT_OK, EXIT_NO_HEALTHY_TRIAL, EXIT_BAD_INPUT, EXIT_STORAGE_FULL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def make_parser(description: str = "") -> argparse.ArgumentParser:
    p = OneLineParser(prog="losstune-sweep", description=description, epilog=EXIT_CODES,
                                formatter_class=HelpFormatter)
    p.add_argument("family", nargs="?", default="hdr_patch", help=f"one of {', '.join(family_names())}")
    add_catalogue_flags(p)
    add_search_flags(p)
    add_config_flags(p)
    add_run_flags(p)
    p.add_argument("--seed", type=int, default=0, help="sampler seed and train.seed")
    p.add_argument("--smoke-test", action="store_true", help="tiny data and 2 epochs per trial")
    p.add_argument("--confirm-top", type=int, default=3,
                   help="after the sweep, rerun the documented default and this many best configs at --confirm-seeds "
                        "new training seeds each, and say whether each beats the default (0: no confirmation)")
    add_seeds(p, "--confirm-seeds")
    add_min_effect(p)
    add_verbosity(p)
    return p


def add_search_flags(p: argparse.ArgumentParser) -> None:
    """What is searched and how: the space, the trials, the searcher and the scheduler."""
    p.add_argument("--space", type=not_empty, help="named search space (default: the family's, e.g. caps)")
    p.add_argument("--trials", type=int, default=8, help="trials in all, the documented default first")
    p.add_argument("--search", choices=["optuna", "optuna-grouped", "prior", "gp", "cmaes", "random"], default="optuna",
                   help="Optuna TPE (Optuna 5's default: the parameters every trial has modelled jointly); "
                        "optuna-grouped: also those of each branch of a space that branches (e.g. hdr_patch's cap "
                        "modes) jointly; prior: piBO (SMAC3), Bayesian optimisation whose prior is centred on the "
                        "documented default (or --config), see --prior-confidence; gp / cmaes: Optuna's "
                        "Gaussian-process or CMA-ES sampler, for spaces of continuous parameters only (no choices, "
                        "no branches); or Optuna's random sampler (same spaces, same default-first trial)")
    p.add_argument("--prior-confidence", choices=["low", "medium", "high"], default="medium",
                   help="--search prior: how sure the default is (the prior's spread: a normal of sd 0.5, 0.25 or "
                        "0.125 of each number's range, its log range where log-scaled; the default's choice weighted "
                        "2, 4 or 6 against 1)")
    p.add_argument("--startup", choices=["fair", "random"], default="fair",
                   help="TPE's random start-up trials: fair spreads each choice (a branch of the space) evenly over "
                        "them; random draws each by a coin, as Optuna does")
    p.add_argument("--startup-trials", type=int,
                   help="trials TPE samples at random before it models the results (default: a quarter of "
                        "--trials, 2 to 10)")
    p.add_argument("--scheduler", choices=["asha", "hyperband", "pbt", "pb2", "none"], default="asha",
                   help="asha / hyperband stop trials early on the family's scalar objective (HyperBand in synchronous "
                        "brackets, pausing trials at each rung); pbt / pb2: Population Based Training over a space of "
                        "distributions (e.g. --space schedule): every --grace-epochs epochs the worst quarter of "
                        "the trials continue from a best quarter trial's checkpoint with mutated settings (PB2 picks "
                        "them by a GP bandit); its first population is random, and the default is never replaced")
    p.add_argument("--grace-epochs", type=int,
                   help="epochs before ASHA's first stop decision, or PBT's perturbation interval (default: a quarter "
                        "of the epochs; at most the epochs); raise it when early epochs rank trials differently from late ones")
    p.add_argument("--population-sync", action="store_true",
                   help="pbt / pb2: perturb the population in step: at each perturbation every trial waits for "
                        "the others, so all are ranked at the same epoch (each restarts from its checkpoint there). "
                        "Without it, Tune's asynchronous PBT: a trial is ranked at its own perturbation against the "
                        "others' latest scores, which may be an epoch behind, and only against trials running then")
    p.add_argument("--objective", choices=["pareto", "scalar"],
                   help="pareto (default where the family declares several objectives, e.g. lgt): "
                        "multi-objective Optuna, results mark the Pareto front; scalar: the one objective")


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """The config every trial starts from, and the points run first."""
    p.add_argument("--epochs", type=int, help="epochs per trial (default: the family's train.epochs)")
    p.add_argument("--preset", type=not_empty, help="a named preset of the family under the search (e.g. phase1)")
    p.add_argument("--config", type=not_empty, help="a JSON config the search starts from, e.g. an earlier sweep's best_config.json "
                                    "(tune weights on top of the best caps); --set applies on top")
    p.add_argument("--enqueue", type=not_empty, metavar="FILE",
                   help="a JSON list of hand-picked points of the space, run first, after the documented default, "
                        'e.g. [{"caps/mode": "B", "caps/log_delta_scale": 0.5}]')
    p.add_argument("--warm-start", type=not_empty, metavar="SWEEP",
                   help="an earlier sweep of the family (its folder): its completed trials that fit this space are "
                        "given to Optuna as prior trials, so the search starts from what it found")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fixed config override, e.g. --set train.batch_size=64 (repeatable)")
    p.add_argument("--data", type=not_empty, help="data file or directory (sets data.path)")


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """How the sweep runs: resources, failures, checkpoints, storage (free to change on --resume)."""
    add_resource_flags(p, "trial")
    p.add_argument("--max-concurrent", type=int, help="default: as many trials as the cluster fits")
    p.add_argument("--max-failures", type=int, default=1,
                   help="failures a trial survives, of its training workers and, apart, of its driver; it resumes "
                        "from its latest checkpoint (-1: any number)")
    p.add_argument("--keep-checkpoints", type=int, default=2,
                   help="checkpoints a trial keeps by the objective, best first, beside its latest")
    p.add_argument("--storage", default="./results", help="local folder or pyarrow URI (s3://, gs://)")
    p.add_argument("--name", help="sweep name (default: <family>-<space>-<time>)")
    p.add_argument("--min-free-mb", type=finite_float, default=MIN_FREE_MB,
                   help="stop the sweep, resumable, when a local --storage has less free space than this")
    p.add_argument("--resume", action="store_true", help="continue the sweep --name in --storage")
    p.add_argument("--mlflow", nargs="?", const="", metavar="URI",
                   help="log the sweep to MLflow: a parent run, a child run per trial and confirmation run "
                        "(default URI: sqlite:///<sweep folder>/mlflow.db; open it with mlflow ui)")
    p.add_argument("--callback", dest="callbacks", action="append", default=[], metavar="MODULE:NAME",
                   help="a Ray Tune callback class to add, made with no arguments, e.g. a W&B logger of your "
                        "own package (repeatable)")
