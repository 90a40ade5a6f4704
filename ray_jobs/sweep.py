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

import json
import shlex
import sys
import time

from losstune.data import DataError
from losstune.ray_jobs.cli.flags import check_storage, print_catalogue
from losstune.ray_jobs.core.usage import AUTO, UsageError
from losstune.ray_jobs.core.plan import POPULATION_SCHEDULERS, SweepPlan, metadata
from losstune.ray_jobs.cli.sweep_flags import make_plan, parse_args
from losstune.ray_jobs.cli.sweep_parser import (EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_NO_HEALTHY_TRIAL, EXIT_OK,
                                                EXIT_STORAGE_FULL)
from losstune.trainables.config import ConfigError
from losstune.ray_jobs.core.storage import join
from losstune.ray_jobs.core import storage
from losstune.ray_jobs.core import cluster  # cluster.start_ray, cluster.fit_to_cluster: the tests stand them in
from losstune.ray_jobs.core.cluster import EXIT_RAY_START, RayStartError, at_a_time
from losstune.ray_jobs.core.interrupts import CtrlC, DiskGuard
from losstune.ray_jobs.core.provenance import data_paths, provenance
from losstune.ray_jobs.reports import report
from losstune.ray_jobs.results.ranking import best_trial
from losstune.ray_jobs.search.dashboards import write_tensorboard_experiment
from losstune.ray_jobs.search.study_journal import fail_orphaned_trials, fetch_study_journal, upload_study_journal
import optuna


def run(plan: SweepPlan) -> int:
    # here, not at the top: loads ray, scipy only where this runs
    from losstune.ray_jobs.search.tuning import build_tuner

    cluster.start_ray(plan.verbosity >= 3)
    plan = cluster.fit_to_cluster(plan)
    meta = saved_definition(plan)
    started = time.time()
    guard = DiskGuard(plan.storage, plan.min_free_mb)  # stops as Ctrl-C does
    if plan.resume:
        fetch_study_journal(plan.storage, plan.name)  # a new machine's driver: the store's copy
    tuner = build_tuner(plan, callbacks=[guard])
    with CtrlC() as ctrl_c:
        grid = tuner.fit()
    upload_study_journal(plan.storage, plan.name)  # also when cut short: --resume may run elsewhere
    if guard.tripped:
        print(f"sweep {plan.name}: stopped: {guard.tripped}. Tune saved its state; free space, then resume with: "
              f"{resume_command(plan)}", file=sys.stderr)
        return EXIT_STORAGE_FULL
    if ctrl_c.pressed:
        # The cut trials' Optuna trials stay RUNNING (fail_orphaned_trials would mark them FAIL, and a
        # resumed trial could then never report: UpdateFinishedTrialError), and no results are written,
        # which would show them as stopped early.
        print(f"sweep {plan.name}: interrupted; Tune saved its state. Resume with: {resume_command(plan)}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return conclude(plan, grid, meta, started)


def saved_definition(plan: SweepPlan) -> dict:
    """The sweep's definition with its provenance (a resumed sweep keeps its first), written beside
    its results before the trials start, and the one line that says what will run."""
    # here, not at the top: loads scipy, sklearn (the study's importance) only where this runs
    from losstune.ray_jobs.results import tables as results

    meta = metadata(plan)
    if plan.resume:
        meta["provenance"] = results.read_meta(plan.experiment).get("provenance", {})
    else:
        meta["provenance"] = provenance(sys.argv, data_paths(plan.base), plan.family)
    if not plan.resume or plan.extend_by:  # an extension's trials and run are saved before it starts
        write_meta(plan, meta)
    if not plan.resume:
        write_tensorboard_experiment(plan)
    added = f" (adding {plan.extend_by} to its {plan.trials - plan.extend_by})" if plan.extend_by else ""
    at_once = (f"as one population{', in step' if plan.population_sync else ''}, as many at a time as fit"
               if plan.scheduler in POPULATION_SCHEDULERS else at_a_time(plan))
    print(f"sweep {plan.name}: {plan.trials} trials{added} of {plan.family} over '{plan.space}', "
          f"{at_once}, results in {plan.experiment}", flush=True)
    return meta


def conclude(plan: SweepPlan, grid, meta: dict, started: float) -> int:
    """A finished sweep's tables, report and confirmation; its exit status."""
    # here, not at the top: loads torch, scipy, sklearn only where this runs
    from losstune.ray_jobs.reports.report_html import write_report_html
    from losstune.ray_jobs.results import tables as results

    if plan.scheduler not in POPULATION_SCHEDULERS:  # PBT samples without Optuna: no study
        fail_orphaned_trials(plan.storage, plan.name)
        upload_study_journal(plan.storage, plan.name)  # beside the results, which read it
    if plan.extensions:  # the trials of every Tune run of the sweep, as each saved them
        grid = results.all_results(plan.experiment, plan.extensions)
    trials, history = results.tables(grid, meta, plan.experiment)
    written = results.write_all(plan.experiment, trials, history, meta)
    write_meta(plan, meta | {"finished": True})  # --resume --trials N may extend it now
    print(report.report(trials, meta, written, history=history))
    print(f"sweep wall time: {time.time() - started:.0f} s")
    if best_trial(trials) is None:
        print(f"report: {write_report_html(plan.experiment)}")
        print(f"sweep: {plan.name}: {report.no_healthy_trial(trials)}; exit {EXIT_NO_HEALTHY_TRIAL}", file=sys.stderr)
        return EXIT_NO_HEALTHY_TRIAL
    if plan.confirm_top and not confirm_best(plan, trials, meta):
        return EXIT_INTERRUPTED
    print(f"report: {write_report_html(plan.experiment)}")
    return EXIT_OK


def confirm_best(plan: SweepPlan, trials, meta: dict) -> bool:
    """The sweep's own confirmation (--confirm-top, --confirm-seeds): the documented default and the
    best configs, as many as ended healthy, at new training seeds (ray_jobs/confirmation/runs.py).
    False where Ctrl-C cut it: no verdict is drawn from cut runs."""
    # here, not at the top: loads torch, optuna, scipy only where this runs
    from losstune.ray_jobs.confirmation import runs as confirmation
    from losstune.ray_jobs.confirmation.conclusion import run_and_conclude

    top = min(plan.confirm_top, confirmation.available(trials, meta))
    if not top:
        print("confirm: no healthy finished trial besides the documented default: nothing to confirm")
        return True
    chosen = confirmation.candidates(trials, meta, top)
    confirmation.check_margin(plan.min_effect, chosen[0])
    auto = plan.confirm_seeds == AUTO
    seeds = confirmation.seeds_for(meta, plan.max_seeds if auto else plan.confirm_seeds)
    started = time.time()
    count = confirmation.seeds_said(auto, seeds)
    print(f"confirm {plan.name}: {len(chosen)} configs x {count}, {plan.max_concurrent} at a time "
          f"(--confirm-top 0 skips this)", flush=True)
    folder = join(plan.experiment, confirmation.folder_name(plan, top, plan.confirm_seeds))
    try:
        print(run_and_conclude(plan, chosen, seeds, folder, auto, plan.resume))
    except confirmation.Interrupted:
        print(f"sweep {plan.name}: the confirmation was interrupted; no verdict from cut runs. Resume with: "
              f"{resume_command(plan)}", file=sys.stderr)
        return False
    print(f"confirmation wall time: {time.time() - started:.0f} s")
    return True


def write_meta(plan: SweepPlan, meta: dict) -> None:
    # here, not at the top: loads scipy, sklearn (the study's importance) only where this runs
    from losstune.ray_jobs.results import tables as results

    storage.write_bytes(join(plan.experiment, results.META_FILE), json.dumps(meta, indent=2).encode())


def resume_command(plan: SweepPlan) -> str:
    """The command to paste: an object store's URI quoted (its query holds '&')."""
    return f"losstune-sweep --resume --name {plan.name} --storage {shlex.quote(plan.storage_arg)}"


def main(argv=None) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # Tune reports trials; Optuna's INFO repeats it
    args = parse_args(argv, description=__doc__)
    if print_catalogue(args):
        return EXIT_OK
    try:
        plan = make_plan(args)
        check_storage(plan.storage)  # last: it creates the folder
    except (ConfigError, DataError, UsageError, NotImplementedError) as err:
        print(f"sweep: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT

    try:
        return run(plan)
    except RayStartError as err:
        print(f"sweep: error: {err}", file=sys.stderr)
        return EXIT_RAY_START
    except (ConfigError, DataError, UsageError, NotImplementedError) as err:  # found once Ray runs (the cluster)
        print(f"sweep: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # a second Ctrl-C, which Tune passes on: its last saved state stands
        print(f"sweep {plan.name}: interrupted. Resume with: {resume_command(plan)}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
