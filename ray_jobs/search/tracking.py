"""Experiment tracking: the sweep in MLflow (`--mlflow [URI]`), and any Ray Tune callback a user
brings (`--callback module:Name`, e.g. Ray's WandbLoggerCallback). Both run in the sweep's driver
process beside Tune's JSON and CSV loggers (ray_jobs/search/tuning.py, ray_jobs/confirmation/runs.py).

In MLflow a sweep is one parent run (its family, space, objective and folder as tags); each trial
and each confirmation run a child run with its sampled parameters, every epoch's metrics, how it
ended and its best checkpoint; a confirmation run is tagged with its config and seed. Opened with
`mlflow ui --backend-store-uri sqlite:///<sweep>/mlflow.db` (docs/results.md)."""

from __future__ import annotations

import importlib

from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune import Callback

from losstune.ray_jobs.core.usage import UsageError
from losstune.ray_jobs.results.trial_links import best_checkpoint, ended
from losstune.trainables.config import flatten
from urllib.parse import urlparse

MLFLOW_DB = "mlflow.db"
SWEEP_TAG = "losstune.sweep"  # on the parent run: the sweep's name


def tracking_uri(given: str, experiment: str) -> str:
    """The MLflow tracking URI of --mlflow: as given (its scheme one MLflow has a store for), or a
    SQLite file in a local sweep's folder."""
    if given:
        check_tracking_scheme(given)
        return given
    if "://" in experiment:
        raise UsageError(f"--mlflow: a sweep stored at {experiment} needs a tracking URI (--mlflow URI): "
                         "MLflow's default store is a file on this machine")
    return f"sqlite:///{experiment}/{MLFLOW_DB}"


def check_tracking_scheme(uri: str) -> None:
    """--mlflow bogus://x failed with MLflow's traceback after Ray started: its scheme is checked
    against MLflow's own registry of tracking stores (mlflow.tracking, the stores it can build)."""
    # here, not at the top: loads mlflow only where this runs
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    schemes = set(_tracking_store_registry._registry)  # the entry points MLflow and its plugins register
    scheme = urlparse(uri).scheme
    if scheme not in schemes and not (len(scheme) == 1 and uri[1:3] in (":\\", ":/")):  # a Windows drive letter
        raise UsageError(f"--mlflow: {uri!r}: MLflow has no tracking store for {scheme + '://'!r} (it has "
                         f"{', '.join(sorted(s + '://' for s in schemes if s))}, or a local path)")


def check_mlflow(given: str | None) -> None:
    """UsageError before Ray starts where --mlflow is asked for without MLflow installed."""
    if given is None:
        return
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise UsageError("--mlflow: MLflow is not installed (pip install 'losstune[mlflow]')") from None


def user_callbacks(specs) -> list:
    """A Ray Tune callback per --callback MODULE:NAME, made with no arguments; UsageError naming the
    flag where one cannot be imported or is no Tune callback."""
    made = []
    for spec in specs:
        module_name, _, name = spec.partition(":")
        if not module_name or not name:
            raise UsageError(f"--callback: {spec!r} is not MODULE:NAME (e.g. mypackage.callbacks:Slack)")
        try:
            found = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as err:
            raise UsageError(f"--callback: cannot import {spec}: {err}") from None
        if not (isinstance(found, type) and issubclass(found, Callback)):
            raise UsageError(f"--callback: {spec} is not a ray.tune.Callback subclass")
        made.append(found())
    return made


class SweepInMLflow(MLflowLoggerCallback):
    """Ray Tune's MLflowLoggerCallback with a parent run per sweep (MLflow nests a run under the
    one its `mlflow.parentRunId` tag names), and, at each run's end, how it ended and its best
    checkpoint. `runs`: a confirmation's list of (config id, seed, point), indexed by the run's
    config ({"run": i}), whose config and seed become its tags and parameters."""

    def __init__(self, uri: str, sweep: str, parent_tags: dict, full_length: int, runs: list | None = None,
                 default_point: dict | None = None, seed: int = 0, artifacts: str = ""):
        super().__init__(uri, experiment_name=sweep)
        self.sweep, self.parent_tags, self.full_length, self.runs = sweep, parent_tags, full_length, runs
        self.default_point, self.seed, self.artifacts = default_point or {}, seed, artifacts

    def setup(self, *args, **kwargs):
        # here, not at the top: loads mlflow only where this runs
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        # made here with the sweep's own artifact folder: MLflow's default is ./mlruns of wherever
        # the sweep was started from
        if self.artifacts and self.client.get_experiment_by_name(self.sweep) is None:
            self.client.create_experiment(self.sweep, artifact_location=self.artifacts)
        super().setup(*args, **kwargs)
        self.tags = {**self.tags, "mlflow.parentRunId": self._parent_run()}

    def _parent_run(self) -> str:
        """The sweep's parent run: found again on --resume and by a confirmation, else made."""
        experiment = self.mlflow_util.experiment_id
        found = self.client.search_runs([experiment], filter_string=f"tags.`{SWEEP_TAG}` = '{self.sweep}'",
                                        max_results=1)
        if found:
            return found[0].info.run_id
        tags = {SWEEP_TAG: self.sweep, **{k: str(v) for k, v in self.parent_tags.items()}}
        run_id = self.client.create_run(experiment, run_name=self.sweep, tags=tags).info.run_id
        self.client.set_terminated(run_id)  # its children carry the results; a parent left RUNNING looks hung
        return run_id

    def log_trial_start(self, trial):
        """The trial's run (its earlier one where a trial cut short goes on) with what it trained:
        the sampled parameters and the training seed; a sweep trial tagged documented_default, a
        confirmation run its config_id and seed (not Tune's internal run index)."""
        if trial not in self._trial_runs and (earlier := self._run_of(trial)):
            self._trial_runs[trial] = earlier  # a trial cut short (Ctrl-C, a lost driver) goes on in its run
        if trial not in self._trial_runs:
            tags = {**self.tags, "trial_name": str(trial)}
            self._trial_runs[trial] = self.mlflow_util.start_run(tags=tags, run_name=str(trial)).info.run_id
        run_id = self._trial_runs[trial]
        if self.runs is not None:
            config_id, seed, point = self.runs[trial.config["run"]]
            tags, params = {"config_id": config_id, "seed": seed}, {**point, "train/seed": seed}
        else:
            tags = {"documented_default": flatten(trial.config) == self.default_point}
            params = {**trial.config, "train/seed": self.seed}
        for key, value in tags.items():
            self.client.set_tag(run_id, key, str(value))
        self.mlflow_util.log_params(params_to_log=params, run_id=run_id)

    def _run_of(self, trial) -> str | None:
        """The run this sweep's earlier driver started for `trial` and never ended, if any."""
        parent = self.tags["mlflow.parentRunId"]
        found = self.client.search_runs([self.mlflow_util.experiment_id], max_results=1, filter_string=(
            f"tags.trial_name = '{trial}' and tags.`mlflow.parentRunId` = '{parent}' and attributes.status = 'RUNNING'"))
        return found[0].info.run_id if found else None

    def log_trial_end(self, trial, failed: bool = False):
        client, run_id = self.client, self._trial_runs[trial]
        result = trial.last_result or {}
        client.set_tag(run_id, "ended", ended(result, failed, self.full_length))
        if result.get("stop_reason"):
            client.set_tag(run_id, "stop_reason", result["stop_reason"])
        if path := best_checkpoint(self.sweep, trial.trial_id):
            client.set_tag(run_id, "best_checkpoint", path)
        super().log_trial_end(trial, failed)


def tracking_callbacks(plan, runs: list | None = None) -> list:
    """The callbacks a sweep's (or, with `runs`, its confirmation's) Tune run adds for tracking:
    MLflow where --mlflow is given, then each --callback."""
    made = user_callbacks(plan.callbacks)
    if plan.mlflow is not None:
        parent = {"family": plan.family, "space": plan.space, "objective": plan.objective["metric"],
                  "folder": plan.experiment}
        artifacts = "" if "://" in plan.experiment else f"file://{plan.experiment}/mlartifacts"
        made.insert(0, SweepInMLflow(tracking_uri(plan.mlflow, plan.experiment), plan.name, parent, plan.epochs, runs,
                                     plan.default_point, int(plan.base.get("train", {}).get("seed", plan.seed)),
                                     artifacts))
    return made
