"""What a sweep tunes with: the Tuner and Optuna's samplers. The study's journal is
ray_jobs/search/study_journal.py. The searcher that
knows a trial's health is ray_jobs/search/health_aware_search.py, the schedulers that keep the documented
default ray_jobs/search/schedulers.py, the graceful stops (Ctrl-C, a full disk) ray_jobs/core/interrupts.py."""

from __future__ import annotations

import os
import warnings

import optuna

from losstune.ray_jobs.search.health_aware_search import HealthAwareOptunaSearch
from losstune.ray_jobs.core.plan import POPULATION_SCHEDULERS, SweepPlan
from losstune.ray_jobs.search.schedulers import make_scheduler
from losstune.ray_jobs.search.study_journal import journal_copies, study_storage
from losstune.trainables.registry import load_family
from losstune.ray_jobs.core.storage import join
from losstune.ray_jobs.results.trial_links import BestCheckpoints
from losstune.ray_jobs.search.branch_fair import BranchFairTPESampler
from losstune.ray_jobs.search.prior_search import PriorSampler
from losstune.ray_jobs.search.progress import TrialTable
from losstune.search_spaces import optuna_space, sample_points, space_distributions
from losstune.trainables.config import unflatten
from losstune.trainables.engine.ray_workarounds import no_temporary_files_in_experiment_sync
from losstune.trainables.engine.tensorboard import SessionEnds
from losstune.trainables.family_api import make_config
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.search.basic_variant import BasicVariantGenerator


def build_tuner(plan: SweepPlan, callbacks=(), stop=None, trainable=None):
    """The Tuner of a plan fitted to its cluster; `callbacks`, `stop` (a Tune Stopper) and
    `trainable` (in the family's trainable's place: benchmarks/replay_sweep.py answers trials from a
    recorded landscape) are for benchmarks."""
    # here, not at the top: loads torch, ray only where this runs
    from losstune.trainables.engine.driver import trainable as family_trainable

    no_temporary_files_in_experiment_sync()
    population = plan.scheduler in POPULATION_SCHEDULERS
    # PBT exploits a donor's checkpoint of a perturbation epoch (Tune's, or Train's in a worker
    # group): every checkpoint stays (a donor's next report could otherwise delete the one a
    # recipient is about to load)
    keep = None if population else plan.keep_checkpoints
    fn = trainable or family_trainable(load_family(plan.family), plan.base, plan.resources,
                                       join(plan.experiment, "trainer_runs"), max_failures=plan.max_failures,
                                       num_to_keep=keep)
    run_config = make_run_config(plan, keep, callbacks, stop)
    if plan.resume and not plan.extend_by:
        return tune.Tuner.restore(join(run_config.storage_path, run_config.name), trainable=fn, resume_errored=True)
    space = plan_space(plan)
    scheduler = make_scheduler(plan, space)
    searcher, param_space = (population_sampler(plan, space) if population else (optuna_searcher(plan, space), None))
    tune_config = tune.TuneConfig(metric=plan.objective["metric"], mode=plan.objective["mode"], search_alg=searcher,
                                  scheduler=scheduler, num_samples=plan.extend_by or plan.trials,
                                  # PBT's population is made at once; the cluster runs what fits, in turns
                                  max_concurrent_trials=None if population else plan.max_concurrent,
                                  # A finished trial's process runs the next trial: its start and
                                  # imports (10-20 s here) are paid once per slot. With ASHA only
                                  # where trials train in their own process, whose loop returns
                                  # within a step of Tune's stop; a worker group's trial is still
                                  # inside TorchTrainer.fit(), and Tune cannot reset the actor.
                                  reuse_actors=reuses_trial_processes(plan))
    return tune.Tuner(fn, param_space=param_space, tune_config=tune_config, run_config=run_config)


def make_run_config(plan: SweepPlan, keep: int | None, callbacks=(), stop=None):
    """Where the run is stored, what it logs, and how it survives a lost trial."""
    # here, not at the top: loads torch, ray, mlflow only where this runs
    from losstune.ray_jobs.search.tracking import tracking_callbacks
    from losstune.trainables.engine.driver import trial_files_synced, tune_checkpoints

    mode = plan.objective["mode"]
    # Our TensorBoardCallback writes the metrics under their own names; Tune's automatic TBX logger
    # would add a second copy under ray/tune/. JSON and CSV stay: analyze.py rebuilds from them.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    # Tune's console interface that takes a reporter of our own (ray_jobs.search.progress); the newer
    # one shows neither the objective nor the sampled parameters, and a box of every metric per trial
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    quiet_forced_snapshots()
    storage_path, name = plan.tune_run()
    return tune.RunConfig(name=name, storage_path=storage_path, stop=stop, verbose=min(plan.verbosity, 2),
                          progress_reporter=progress_table(plan) if plan.verbosity else None,
                          callbacks=[JsonLoggerCallback(), CSVLoggerCallback(),
                                     BestCheckpoints(plan.name, mode, plan.storage), SessionEnds(plan.epochs),
                                     *tracking_callbacks(plan), *journal_copies(plan), *callbacks],
                          # A trial whose driver is lost (its node gone, on a cluster without
                          # losstune_driver) restarts; its TorchTrainer resumes from the checkpoint.
                          failure_config=tune.FailureConfig(max_failures=plan.max_failures),
                          # what Tune keeps of a trial that trains in its own process
                          checkpoint_config=tune_checkpoints(mode, keep), sync_config=trial_files_synced())


def quiet_forced_snapshots() -> None:
    """Tune saves its experiment state whenever a trial has written as many checkpoints as it keeps,
    which a trial in its own process does every few epochs, and warned at each (72 times in `make
    demo`, each snapshot taking about 0.01 s). Its warning of a slow snapshot (over 30 s) stays."""
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def reuses_trial_processes(plan: SweepPlan) -> bool:
    """Whether a trial's process runs later trials (Tune's reuse_actors): without a scheduler, or
    with ASHA where trials train in their own process. HyperBand pauses trials, PBT and PB2
    exploit them: those keep a process per trial."""
    return plan.scheduler == "none" or (plan.scheduler == "asha" and plan.resources.in_trial_process)


def optuna_searcher(plan: SweepPlan, space):
    """The Optuna searcher of the plan's sampler, its study journaled beside the sweep."""
    # An extension's searcher opens the sweep's study, which holds every trial so far, and asks for
    # new points only: the default, the enqueued points and the warm start are in the study already.
    first = [] if plan.extend_by else [plan.default_point, *plan.enqueued]
    # Multi-objective: Optuna samples for the Pareto front (its TPE handles several objectives);
    # Tune itself and ASHA still rank by the scalar objective.
    many = plan.objectives
    metric = [o["metric"] for o in many] if many else plan.objective["metric"]
    mode = [o["mode"] for o in many] if many else plan.objective["mode"]
    return HealthAwareOptunaSearch(space=optuna_space(space), metric=metric, mode=mode,
                                   sampler=make_sampler(plan), full_length=plan.epochs,
                                   points_to_evaluate=first, priors=plan.priors, prior_space=space,
                                   default_point=plan.default_point,
                                   study_name=plan.name, storage=study_storage(plan.storage, plan.name))


def population_sampler(plan: SweepPlan, space: dict):
    """(searcher, param_space) of a PBT / PB2 sweep: its first population drawn at random from the
    space after the default and the enqueued points. Tune refuses a model-based searcher beside
    PBT, whose trials change their config mid-run."""
    first = [unflatten(point) for point in (plan.default_point, *plan.enqueued)]
    return BasicVariantGenerator(points_to_evaluate=first, random_state=plan.seed), space


def progress_table(plan: SweepPlan):
    """The console's table: each trial's epoch, objective(s) and stop reason, and the parameters
    the space tunes (those of the default's branch and of sampled ones). -v: at every change."""
    space = plan_space(plan)
    points = [plan.default_point, *sample_points(space, 16, plan.seed)]
    tuned = list(dict.fromkeys(key for point in points for key in point))
    objectives = [plan.objective, *[o for o in plan.objectives if o != plan.objective]]
    return TrialTable(objectives, tuned, plan.default_point, plan.epochs, every_s=0 if plan.verbosity >= 2 else 30)


def plan_space(plan: SweepPlan):
    """The sweep's search space, bound to its base config where the space reads one."""
    family = load_family(plan.family)
    return family.space(plan.space, make_config(family, plan.base))


def make_sampler(plan: SweepPlan):
    if plan.search == "optuna":
        return tpe_sampler(plan)
    if plan.search == "optuna-grouped":
        # Optuna 5's TPE is already multivariate (single objective) with a constant liar, but on a
        # space that branches it models jointly only the parameters every trial has; the others it
        # samples one by one. `group` models each set of parameters that always come together jointly.
        return tpe_sampler(plan, multivariate=True, group=True)
    if plan.search == "prior":
        return prior_sampler(plan)
    if plan.search == "gp":
        return optuna.samplers.GPSampler(seed=plan.seed, n_startup_trials=plan.startup_trials)
    if plan.search == "cmaes":
        # The trials a scheduler stopped reach Optuna as PRUNED with their epochs; CMA-ES ranks them
        # by their last value. Without them (Optuna's default) a generation waits for completed
        # trials, and ASHA completes about one in three: a 32-trial sweep would barely finish one.
        with warnings.catch_warnings():  # "experimental" since Optuna 2.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.CmaEsSampler(seed=plan.seed, n_startup_trials=plan.startup_trials,
                                                consider_pruned_trials=True)
    return optuna.samplers.RandomSampler(seed=plan.seed)


def tpe_sampler(plan: SweepPlan, **tpe):
    """Optuna's TPE, its start-up spread over the space's branches (ray_jobs/search/branch_fair.py) or,
    with --startup random, Optuna's own."""
    kind = BranchFairTPESampler if plan.startup == "fair" else optuna.samplers.TPESampler
    return kind(seed=plan.seed, n_startup_trials=plan.startup_trials, **tpe)


def prior_sampler(plan: SweepPlan):
    """piBO (ray_jobs/search/prior_search.py) over every parameter the sweep's space can hold, its prior
    centred on the sweep's base point (the documented default, or --config's)."""
    distributions, _ = space_distributions(plan_space(plan))
    return PriorSampler(distributions, plan.default_point, confidence=plan.prior_confidence, trials=plan.trials,
                        startup_trials=plan.startup_trials, seed=plan.seed,
                        direction="minimize" if plan.objective["mode"] == "min" else "maximize")
