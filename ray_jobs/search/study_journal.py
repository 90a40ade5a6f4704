"""A sweep's Optuna study, journaled to a file (Optuna's JournalStorage): in the sweep's folder, or
for a sweep in an object store, on the driver's disk and copied to the store as trials end, so that
--resume on another machine finds it."""

from __future__ import annotations

import hashlib
import os

import optuna
from ray.tune import Callback

from losstune.ray_jobs.core import storage as stores
from losstune.ray_jobs.core.plan import POPULATION_SCHEDULERS, SweepPlan
from losstune.ray_jobs.core.storage import join
from losstune.ray_jobs.results.study import STUDY_FILE


def study_journal(storage: str, name: str) -> str:
    """Where the Optuna study of sweep `name` is journaled: in the sweep's folder when storage is
    local, else in a local folder of this store's (Optuna appends to a journal file, which an object
    store cannot), copied to the sweep's folder as trials end (upload_study_journal)."""
    if "://" in storage:
        store = hashlib.sha256(storage.encode()).hexdigest()[:12]
        return os.path.expanduser(f"~/.losstune/studies/{store}/{name}/{STUDY_FILE}")
    return join(storage, name, STUDY_FILE)


def journal_copies(plan: SweepPlan) -> list:
    """StudyJournalCopy where the sweep has a study (not PBT's) in an object store."""
    remote = "://" in plan.storage and plan.scheduler not in POPULATION_SCHEDULERS
    return [StudyJournalCopy(plan.storage, plan.name)] if remote else []


def upload_study_journal(storage: str, name: str) -> None:
    """The local journal of a sweep in an object store, copied to the sweep's folder there."""
    local = study_journal(storage, name)
    if "://" in storage and os.path.exists(local):
        with open(local, "rb") as f:
            stores.write_bytes(join(storage, name, STUDY_FILE), f.read())


def fetch_study_journal(storage: str, name: str) -> None:
    """The sweep's copy of its journal, where this machine has none (--resume on a new head, after
    the old one was lost)."""
    local, remote = study_journal(storage, name), join(storage, name, STUDY_FILE)
    if "://" in storage and not os.path.exists(local) and stores.exists(remote):
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with open(local, "wb") as out:
            out.write(stores.read_bytes_of(remote))


class StudyJournalCopy(Callback):
    """Copies the study's journal to an object store as each trial ends: a driver killed with its
    machine leaves a study that --resume can read on another."""

    def __init__(self, storage: str, name: str):
        self.storage, self.name = storage, name

    def on_trial_complete(self, iteration, trials, trial, **info):
        upload_study_journal(self.storage, self.name)

    on_trial_error = on_trial_complete


def study_storage(storage: str, name: str):
    """The study's JournalStorage, its folder made."""
    path = study_journal(storage, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))


def fail_orphaned_trials(storage: str, name: str) -> int:
    """Once the sweep is over no Optuna trial can still be running: one that is was asked for by a
    driver killed before Tune saved the trial (a --resume then never runs it). Record it as FAIL,
    so the study holds no trial that looks alive. Returns how many."""
    study = optuna.load_study(study_name=name, storage=study_storage(storage, name))
    orphans = [t.number for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING])]
    for number in orphans:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    return len(orphans)
