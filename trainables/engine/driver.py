"""The Tune function trainable: each trial runs its family's loop through a TorchTrainer.

A trial with one training worker runs it in the trial's own process: Ray Train V2's local mode
(ScalingConfig(num_workers=0)), the loop reporting and checkpointing through Tune
(trainables/engine/tune_session.py). Starting Train's controller and a worker process per trial cost
9-30 s against seconds of training on small runs. A trial with several workers (DDP), or run with
--worker-group, starts the TorchTrainer's worker group; `TuneReportCallback`
forwards the workers' reports to Tune, and the trial function only waits on the trainer, so it
holds a fraction of a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import ray.train
import ray.tune
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from losstune.trainables.config import merge
from losstune.trainables.checkpoint_score import CHECKPOINT_SCORE
from losstune.trainables.family_api import Family, make_config
from losstune.trainables.engine import shipped_data
from losstune.trainables.engine.session import continued_run
from losstune.trainables.engine.shipped_data import ShippedData
from losstune.trainables.engine.ray_workarounds import (NoRestartWithoutDriver, poll_train_workers_often,
                                                        wait_until_tune_took_the_last_report,
                                                        without_an_idle_dataset_manager)
from losstune.trainables.engine.tensorboard import EpochEvents, TensorBoardCallback, hparams_of
from losstune.trainables.engine.timeline import controller_marks, mark, process_started_at


CONTROLLER_FAILURE_LIMIT = 3  # each a 60 s worker-group start timeout


@dataclass(frozen=True)
class TrialResources:
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    driver_cpus: float = 0.1
    # A custom resource the cluster gives its head node (cluster.yaml: losstune_driver): drivers
    # then hold one unit of it instead of CPU, so they sit on the head, not on GPU workers.
    driver_resource: str = ""
    # A PBT population larger than the trials that fit takes turns: each driver also holds this
    # share of the one unit of a custom resource the Ray has (ray_jobs/core/cluster.py: TRIAL_SLOTS),
    # so only as many drivers as fit run at once; the rest wait, PENDING or PAUSED, for PBT.
    slot_resource: str = ""
    slot_share: float = 0.0
    # --worker-group: a one-worker trial still starts Train's controller and worker processes
    # (as every trial did before 2026-11-28: saved sweeps without the field ran so, `saved`)
    worker_group: bool = False

    @classmethod
    def saved(cls, fields: dict) -> "TrialResources":
        """The resources a sweep saved (plan.metadata)."""
        return cls(**{"worker_group": True, **fields})

    @property
    def in_trial_process(self) -> bool:
        """Whether the trial trains in its own process (Train's local mode), not in a worker group."""
        return self.workers == 1 and not self.worker_group

    def driver(self) -> dict:
        """What the trial's own process holds: its one worker's CPU and GPU where it trains in it,
        else a driver's share of a CPU (or of the head's driver resource)."""
        if self.in_trial_process:
            need = {kind: amount for kind, amount in self.per_worker().items() if amount}
        else:
            need = {"CPU": 0.0, self.driver_resource: 1.0} if self.driver_resource else {"CPU": self.driver_cpus}
        return {**need, self.slot_resource: self.slot_share} if self.slot_resource else need

    def per_worker(self) -> dict:
        return {"CPU": self.cpus_per_worker, "GPU": self.gpus_per_worker}

    def per_trial(self) -> dict:
        if self.in_trial_process:
            return self.driver()
        need = {kind: self.workers * amount for kind, amount in self.per_worker().items()}
        for kind, amount in self.driver().items():
            need[kind] = need.get(kind, 0.0) + amount
        return need

    def scaling_config(self) -> ray.train.ScalingConfig:
        per_worker = {"CPU": self.cpus_per_worker}
        if self.gpus_per_worker:
            per_worker["GPU"] = self.gpus_per_worker
        return ray.train.ScalingConfig(num_workers=self.workers, use_gpu=self.gpus_per_worker > 0,
                                       resources_per_worker=per_worker)


def keep_checkpoints(mode: str, best: int | None, kind=ray.train.CheckpointConfig):
    """Keep a run's latest checkpoint, which a restart resumes from (Ray never deletes it), and
    its `best` best by the family's objective (None: all), as seeds 000 and 001 keep
    checkpoint_best.pt beside checkpoint_latest.pt. An epoch that did not validate its own weights
    scores NaN (CHECKPOINT_SCORE), which Ray ranks below every number. `kind`: Train's
    CheckpointConfig for a worker group's run, Tune's for a trial that reports to Tune."""
    return kind(num_to_keep=best, checkpoint_score_attribute=CHECKPOINT_SCORE, checkpoint_score_order=mode)


def objective_of(family: Family, overrides: dict):
    """The objective runs of these overrides are ranked by (Family.objective_of)."""
    return family.objective_of(make_config(family, overrides))


def make_trainer(family: Family, config: dict, resources: TrialResources, name: str, storage_path: str,
                 callbacks: list, max_failures: int, num_to_keep: int | None, start_from=None,
                 shipped: ShippedData = ShippedData()) -> TorchTrainer:
    """The TorchTrainer of one run, a sweep's trial or a retrain: the family's loop on `config`
    (nested overrides, its local paths read from each worker's node copy of `shipped`), its
    checkpoints kept by the objective; a new run starts from `start_from` (another run's
    checkpoint) where given."""
    from losstune.trainables.engine.ray_session import train_loop  # torch and Accelerate: only where a run starts

    return without_an_idle_dataset_manager(TorchTrainer(
        train_loop(family, start_from, shipped),
        train_loop_config=config,
        scaling_config=resources.scaling_config(),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage_path, callbacks=callbacks,
            # A worker group that cannot start (its CPU never frees up) is a controller failure,
            # which Train retries forever by default: fail the run after a few.
            failure_config=ray.train.FailureConfig(max_failures=max_failures,
                                                   controller_failure_limit=CONTROLLER_FAILURE_LIMIT),
            checkpoint_config=keep_checkpoints(objective_of(family, config).mode, num_to_keep))))


def run_trial(config: dict, *, family: Family, base: dict, resources: TrialResources, runs_path: str,
              max_failures: int = 1, num_to_keep: int | None = 2, shipped: ShippedData = ShippedData()) -> None:
    """One trial: the sweep's fixed overrides (`base`) under the trial's sampled `config`, in this
    process or in a worker group (TrialResources.in_trial_process)."""
    context = ray.tune.get_context()
    mark("driver_entered", run=context.get_trial_id(), t_process=process_started_at())
    overrides = merge(base, config)
    events = (context.get_trial_dir(), family.tags, hparams_of(config, make_config(family, overrides).train.seed))
    if resources.in_trial_process:
        from losstune.trainables.engine.tune_session import train_in_trial_process  # torch: only where a run starts

        train_in_trial_process(family, overrides, context.get_trial_id(), EpochEvents(*events), shipped)
        return
    poll_train_workers_often()
    # TensorBoard first: once TuneReportCallback has handed Tune a report, ASHA may stop the trial
    # and kill this controller, and an epoch written after that would be lost
    callbacks = [TensorBoardCallback(*events), TuneReportCallback(),
                 NoRestartWithoutDriver(ray.get_runtime_context().get_actor_id()),
                 *controller_marks(context.get_trial_id())]
    # PBT's exploit gives the trial another trial's Train checkpoint (ray_jobs/search/schedulers.py)
    donor = ray.tune.get_checkpoint()
    # the same name on a restarted trial: Train resumes from the run's latest checkpoint
    name = run_name(context.get_trial_id(), donor)
    trainer = make_trainer(family, overrides, resources, name, runs_path, callbacks,
                           max_failures, num_to_keep, start_from=donor, shipped=shipped)
    trainer.fit()
    mark("fit_returned", run=context.get_trial_id())
    wait_until_tune_took_the_last_report()


def trial_files_synced() -> ray.tune.SyncConfig:
    """Tune uploads what a trial writes in its folder (TensorBoard events) to the trial's folder in
    storage at each checkpoint and when the trial ends. Without it a process that Tune reuses for
    a later trial writes them into a local working directory that never reaches the sweep's
    folder (nor leaves a cluster's worker node)."""
    return ray.tune.SyncConfig(sync_artifacts=True)


def tune_checkpoints(mode: str, best: int | None) -> ray.tune.CheckpointConfig:
    """What Tune keeps of a trial that trains in its own process: as a Train run keeps."""
    return keep_checkpoints(mode, best, ray.tune.CheckpointConfig)


def run_name(trial_id: str, donor) -> str:
    """The Train run of a trial: named by the trial, or, once PBT has made it continue a donor's
    checkpoint, by the trial and that checkpoint. The name is the same each time the trial starts
    with that donor (a pause, a lost driver), so Train resumes the continued run, not the donor."""
    if donor is None:
        return trial_id
    folders = donor.path.rstrip("/").split("/")
    return continued_run(trial_id, folders[-2], donor.path)


def run_listed(config: dict, *, runs: list[dict], **kwargs) -> None:
    """One of a fixed list of runs (a confirmation's configs at its seeds): `run_trial` on the
    overrides at the index the trial's config names."""
    run_trial(runs[config["run"]], **kwargs)


def trainable(family: Family, base: dict, resources: TrialResources, runs_path: str, runs: list | None = None,
              **kwargs):
    """`run_trial` bound to one sweep, with the driver's fractional CPU; with `runs`, `run_listed`
    over them (the trial's config is then {"run": index}). The local files the config names go to
    the trials' nodes through the object store (shipped_data)."""
    listed = {"runs": runs} if runs is not None else {}
    shipped = shipped_data.ship(base)
    if shipped.summary():
        print(shipped.summary(), flush=True)
    bound = ray.tune.with_parameters(run_listed if runs is not None else run_trial, family=family, base=base,
                                     resources=resources, runs_path=runs_path, shipped=shipped, **listed, **kwargs)
    return ray.tune.with_resources(bound, resources.driver())
