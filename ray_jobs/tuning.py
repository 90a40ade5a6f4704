"""What a sweep tunes with: the Tuner, Optuna's samplers and its study journal, the searcher and
scheduler that know a trial's health and the documented default, and the disk guard."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
import warnings

import optuna
import ray.tune
from ray.tune.search.optuna import OptunaSearch

from losstune.ray_jobs.plan import POPULATION_SCHEDULERS, SweepPlan
from losstune.ray_jobs.schedulers import make_scheduler
from losstune.ray_jobs.study import HEALTH_CONSTRAINT, REPEAT_OF, STUDY_FILE, WARM_START, name_metrics
from losstune.trainables.families import load_family

logger = logging.getLogger(__name__)

REDRAWS = 32  # draws in a row that may repeat trained configs before one is trained again


def build_tuner(plan: SweepPlan, callbacks=(), stop=None):
    """The Tuner of a plan fitted to its cluster; `callbacks` and `stop` (a Tune Stopper) are for
    benchmarks."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from losstune.trainables.driver import trainable, tune_checkpoints

    population = plan.scheduler in POPULATION_SCHEDULERS
    # PBT exploits a donor's Train checkpoint of a perturbation epoch: every Train checkpoint stays
    # (a donor's next report could otherwise delete the one a recipient is about to load)
    fn = trainable(load_family(plan.family), plan.base, plan.resources, f"{plan.experiment}/trainer_runs",
                   max_failures=plan.max_failures, num_to_keep=None if population else plan.keep_checkpoints)
    metric, mode = plan.objective["metric"], plan.objective["mode"]
    # Our TensorBoardCallback writes the metrics under their own names; Tune's automatic TBX logger
    # would add a second copy under ray/tune/. JSON and CSV stay: analyze.py rebuilds from them.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    # Tune's console interface that takes a reporter of our own (ray_jobs.progress); the newer
    # one shows neither the objective nor the sampled parameters, and a box of every metric per trial
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    storage_path, name = plan.tune_run()
    run_config = tune.RunConfig(name=name, storage_path=storage_path, stop=stop,
                                verbose=min(plan.verbosity, 2),
                                progress_reporter=progress_table(plan) if plan.verbosity else None,
                                callbacks=[JsonLoggerCallback(), CSVLoggerCallback(), *callbacks],
                                # A trial whose driver is lost (its node gone, on a cluster without
                                # losstune_driver) restarts; its TorchTrainer resumes from the checkpoint.
                                failure_config=tune.FailureConfig(max_failures=plan.max_failures),
                                # what Tune keeps of a trial that trains in its own process
                                checkpoint_config=tune_checkpoints(mode, plan.keep_checkpoints))
    if plan.resume and not plan.extend_by:
        return tune.Tuner.restore(f"{storage_path}/{name}", trainable=fn, resume_errored=True)
    space = plan_space(plan)
    scheduler = make_scheduler(plan, space)
    searcher, param_space = (population_sampler(plan, space) if population else (optuna_searcher(plan, space), None))
    tune_config = tune.TuneConfig(metric=metric, mode=mode, search_alg=searcher, scheduler=scheduler,
                                  num_samples=plan.extend_by or plan.trials,
                                  # PBT's population is made at once; the cluster runs what fits, in turns
                                  max_concurrent_trials=None if population else plan.max_concurrent,
                                  # A finished trial's driver actor runs the next trial: its process
                                  # start and imports (~3.6 s here) are paid once per slot. Not with a
                                  # scheduler: a trial it stops is still inside TorchTrainer.fit(), so Tune
                                  # cannot reset the actor (the trial errors and its run lingers).
                                  reuse_actors=scheduler is None)
    return tune.Tuner(fn, param_space=param_space, tune_config=tune_config, run_config=run_config)


def optuna_searcher(plan: SweepPlan, space):
    """The Optuna searcher of the plan's sampler, its study journaled beside the sweep."""
    from losstune.search_spaces import optuna_space

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
                                   study_name=plan.name, storage=study_storage(plan.storage, plan.name))


def population_sampler(plan: SweepPlan, space: dict):
    """(searcher, param_space) of a PBT / PB2 sweep: its first population drawn at random from the
    space after the default and the enqueued points. Tune refuses a model-based searcher beside
    PBT, whose trials change their config mid-run."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from losstune.trainables.config import unflatten

    first = [unflatten(point) for point in (plan.default_point, *plan.enqueued)]
    return BasicVariantGenerator(points_to_evaluate=first, random_state=plan.seed), space


def progress_table(plan: SweepPlan):
    """The console's table: each trial's epoch, objective(s) and stop reason, and the parameters
    the space tunes (those of the default's branch and of sampled ones). -v: at every change."""
    from losstune.ray_jobs.progress import TrialTable
    from losstune.search_spaces import sample_points

    space = plan_space(plan)
    points = [plan.default_point, *sample_points(space, 16, plan.seed)]
    tuned = list(dict.fromkeys(key for point in points for key in point))
    objectives = [plan.objective, *[o for o in plan.objectives if o != plan.objective]]
    return TrialTable(objectives, tuned, plan.default_point, plan.epochs, every_s=0 if plan.verbosity >= 2 else 30)


def plan_space(plan: SweepPlan):
    """The sweep's search space, bound to its base config where the space reads one."""
    from losstune.trainables.families import make_config

    family = load_family(plan.family)
    return family.space(plan.space, make_config(family, plan.base))


def make_sampler(plan: SweepPlan):
    if plan.search == "optuna":
        return optuna.samplers.TPESampler(seed=plan.seed, n_startup_trials=plan.startup_trials)
    if plan.search == "optuna-grouped":
        # Optuna 5's TPE is already multivariate (single objective) with a constant liar, but on a
        # space that branches it models jointly only the parameters every trial has; the others it
        # samples one by one. `group` models each set of parameters that always come together jointly.
        return optuna.samplers.TPESampler(seed=plan.seed, n_startup_trials=plan.startup_trials,
                                          multivariate=True, group=True)
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


def study_journal(storage: str, name: str) -> str:
    """Where the Optuna study of sweep `name` is journaled: in the sweep's folder when storage is
    local, else in a local folder, copied to the sweep's storage when the sweep ends."""
    if "://" in storage:
        return os.path.expanduser(f"~/.losstune/{name}/{STUDY_FILE}")
    return f"{storage}/{name}/{STUDY_FILE}"


def study_storage(storage: str, name: str):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = study_journal(storage, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return JournalStorage(JournalFileBackend(path))


def fail_orphaned_trials(storage: str, name: str) -> int:
    """Once the sweep is over no Optuna trial can still be running: one that is was asked for by a
    driver killed before Tune saved the trial (a --resume then never runs it). Record it as FAIL,
    so the study holds no trial that looks alive. Returns how many."""
    study = optuna.load_study(study_name=name, storage=study_storage(storage, name))
    orphans = [t.number for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING])]
    for number in orphans:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    return len(orphans)


class DiskGuard(ray.tune.Callback):
    """Stops the sweep as Ctrl-C does (Tune saves its state, the trials stay resumable) when a local
    --storage runs low, checked after every result and every trial error: written to the last
    byte, Tune's state and the trials' error files end truncated, and the sweep can be neither
    resumed nor read."""

    def __init__(self, storage: str, min_free_mb: float):
        self.folder = None if "://" in storage else storage
        self.min_free_mb = min_free_mb
        self.tripped = ""  # why it stopped the sweep

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.check()

    def on_trial_error(self, iteration, trials, trial, **info):  # e.g. a checkpoint that did not fit
        self.check()

    def check(self) -> None:
        if self.folder and not self.tripped:
            free_mb = shutil.disk_usage(self.folder).free / 2**20
            if free_mb < self.min_free_mb:
                self.stop(f"--storage {self.folder} has {free_mb:.1f} MB free (--min-free-mb {self.min_free_mb:g})")

    def stop(self, why: str) -> None:
        self.tripped = why
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's graceful stop, the one CtrlC (below) asks for


class HealthAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna FAIL for a trial that errored, PRUNED and infeasible for one
    its family's health check stopped, and PRUNED for one a scheduler stopped before
    `full_length` epochs.

    Ray's OptunaSearch records a trial that errored after reporting as COMPLETE with its last
    value, so a diverged trial could become the study's best. It also records an ASHA-stopped
    trial as COMPLETE with its value at the epoch it was stopped, which TPE then ranks against
    full-length trials as if it were final. Pruned, Optuna keeps its reported epochs
    (intermediate values) and TPE ranks it behind the trials that ran to the end. (Multi-objective
    studies take no intermediate values; there the stopped trial stays COMPLETE.)

    A trial that ended with a `stop_reason` (non-finite loss, one loss term taking over, ...) is
    no valid sample of the objective, but it is a finding about its settings: the seeds' failure
    modes belong to regions of the space. Told FAIL, TPE ignored it. On latent_conditioner
    `weights`, where 28-36 of a TPE sweep's 36-47 trials stopped unhealthy, its 4 start-up trials
    (it counts COMPLETE and PRUNED ones) took until trial 11-21, and then it modelled the few
    healthy trials while the unhealthy region stayed invisible. So such a trial is PRUNED with the
    constraint `healthy` violated: TPE ranks an infeasible trial behind every feasible one, and
    no study gives it as a best (GP models COMPLETE trials only, so it ignores the trial as it
    did a FAIL one). CMA-ES knows no constraints and would rank it by its last value (unhealthy
    trials are often the fastest early), so under CMA-ES it stays FAIL. Its `stop_reason` is a
    user attribute of the Optuna trial.

    A draw that repeats a config this sweep has trained (to the end, or until its health check
    stopped it) is told that trial's result and not trained again: every trial trains at the
    sweep's seed, so it would only repeat the result. TPE keeps drawing a branch of choices alone
    (hdr_patch's Mode A without a clamp): 15 of one TPE sweep's 49 trials trained the same config.
    """

    def __init__(self, *args, full_length: int | None = None, priors: list = (), prior_space=None, **kwargs):
        self.full_length = full_length
        self.priors, self.prior_space = list(priors), prior_space  # before Ray's __init__ sets the study up
        super().__init__(*args, **kwargs)

    def _setup_study(self, mode):
        """Ray's study, with the objectives' names (Optuna's plots and optuna-dashboard read them)
        and, on a fresh study, the warm start's prior trials."""
        super()._setup_study(mode)
        study = self._ot_study
        if study.metric_names is None:
            name_metrics(study, self._metric if isinstance(self._metric, list) else [self._metric])
        if self.priors and not study.user_attrs.get("warm_start_trials"):
            from losstune.ray_jobs.prior_points import add_prior_trials
            from losstune.search_spaces import space_distributions

            add_prior_trials(study, self.priors, space_distributions(self.prior_space)[0])
            study.set_user_attr("warm_start_trials", len(self.priors))

    def suggest(self, trial_id: str):
        """Ray's suggestion; a repeat of a trained config is told that config's result and drawn
        again (REDRAWS times, then trained all the same: the sampler has nothing new to offer)."""
        for _ in range(REDRAWS):
            config = super().suggest(trial_id)
            earlier = self._trained_alike(self._ot_trials[trial_id])
            if earlier is None:
                return config
            self._tell_as_before(self._ot_trials.pop(trial_id), earlier)
        logger.warning("%s: %d draws in a row repeated trained configs; training the next one again",
                       trial_id, REDRAWS)
        return super().suggest(trial_id)

    def _trained_alike(self, trial):
        """The trial of this sweep that trained the same config with a result it would repeat:
        COMPLETE, or stopped by its health check. None for the default or an --enqueue point (they
        run as asked), and for a config only a scheduler stopped (that depends on the others)."""
        trials = self._ot_study.get_trials(deepcopy=False)
        if "fixed_params" in trials[trial.number].system_attrs:
            return None  # Optuna's mark of an enqueued trial
        for done in trials:
            known = done.state == optuna.trial.TrialState.COMPLETE or (
                done.state.is_finished() and "stop_reason" in done.user_attrs)
            if known and done.params == trial.params and not done.user_attrs.get(WARM_START):
                return done
        return None

    def _tell_as_before(self, trial, earlier) -> None:
        trial.set_user_attr(REPEAT_OF, earlier.number)
        if earlier.state == optuna.trial.TrialState.COMPLETE:
            self._ot_study.tell(trial, earlier.values)
            return
        trial.set_user_attr("stop_reason", earlier.user_attrs["stop_reason"])
        for key, value in earlier.constraints.items():
            trial.set_constraint(key, value)
        for step, value in earlier.intermediate_values.items():  # its epochs, as a pruned trial keeps them
            trial.report(value, step)
        self._ot_study.tell(trial, state=earlier.state)

    def on_trial_result(self, trial_id: str, result: dict):
        self._note_if_told(trial_id)
        super().on_trial_result(trial_id, result)

    def _note_if_told(self, trial_id: str) -> None:
        """A sweep driver killed after Optuna was told a trial's end but before Tune saved that
        trial runs it again on --resume (its run only reports its end once more). Ray's check for
        an ended trial reads the searcher's state, saved before the end; reporting to a finished
        Optuna trial raises and ends the sweep. The study is the record: it has the answer."""
        trial = self._ot_trials.get(trial_id)
        if trial is None or trial_id in self._completed_trials:
            return
        if self._ot_study.get_trials(deepcopy=False)[trial.number].state.is_finished():
            self._completed_trials.add(trial_id)  # Ray then ignores its results and its end

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        self._note_if_told(trial_id)
        result = result or {}
        if error:
            return super().on_trial_complete(trial_id, result=None, error=True)
        # (a trial Optuna was told of already takes no attributes: Ray's own check below skips it)
        if result.get("stop_reason") and trial_id not in self._completed_trials:
            return self._tell_unhealthy(trial_id, result["stop_reason"])
        stopped_early = self.full_length and result.get("epoch", self.full_length) < self.full_length
        if stopped_early and not isinstance(self.metric, list):
            return super().on_trial_complete(trial_id, result=None, error=False)  # Ray: PRUNED
        return super().on_trial_complete(trial_id, result=result or None, error=error)

    def _tell_unhealthy(self, trial_id: str, stop_reason: str) -> None:
        trial = self._ot_trials[trial_id]
        trial.set_user_attr("stop_reason", stop_reason)
        if isinstance(self._sampler, optuna.samplers.CmaEsSampler):
            return super().on_trial_complete(trial_id, result=None, error=True)  # Ray: FAIL
        trial.set_constraint(HEALTH_CONSTRAINT, 1.0)  # > 0: violated
        return super().on_trial_complete(trial_id, result=None, error=False)  # Ray: PRUNED


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
