"""The schedulers' own rules, on stand-in trials: HyperBand fills each bracket once, the default
stays out of HyperBand's brackets and PBT's lower quantile, PBT's explore stays in the space."""

from types import SimpleNamespace

import pandas as pd
import ray.train
from ray import tune

from losstune.ray_jobs.results.tables import lineage, lr_by_epoch
from losstune.ray_jobs.search.schedulers import (DefaultKeepingASHA, DefaultKeepingHyperBand, DefaultKeepingPBT, bounds,
                                          mutations, within)
from losstune.trainables.engine.driver import TrialResources, run_name

DEFAULT = {"optim/lr": 1e-3}
SPACE = {"optim": {"lr": tune.loguniform(1e-4, 1e-2), "steps": tune.randint(1, 5)},
         "schedule": {"kind": tune.choice(["cosine", "constant"])}}


class Trial(SimpleNamespace):
    """What the schedulers read of a Tune trial."""

    def __init__(self, lr: float, status: str = "PENDING"):
        super().__init__(config={"optim": {"lr": lr}}, status=status, experiment_tag="t", evaluated_params={},
                         run_metadata=SimpleNamespace(checkpoint_manager=SimpleNamespace(
                             checkpoint_config=SimpleNamespace(num_to_keep=None))))

    def is_finished(self) -> bool:
        return self.status in ("TERMINATED", "ERROR")

    __hash__ = object.__hash__
    __eq__ = object.__eq__


def test_hyperband_fills_a_bracket_once_and_keeps_the_default_out_of_them():
    scheduler = DefaultKeepingHyperBand(DEFAULT, metric="m", mode="min", time_attr="epoch", max_t=6)
    default, *trials = [Trial(1e-3)] + [Trial(2e-3 + i * 1e-4) for i in range(4)]
    for trial in [default, *trials[:3]]:
        scheduler.on_trial_add(None, trial)
    assert default not in scheduler._trial_info
    first = scheduler._trial_info[trials[0]][0]
    assert first.filled() and first._r == 6  # bracket s=0: three trials, every epoch
    first.cleanup_trial(trials[0])  # a trial of it ended: Tune's own bracket would take the next one
    scheduler.on_trial_add(None, trials[3])
    second = scheduler._trial_info[trials[3]][0]
    assert second is not first and second._r == 2  # the next bracket: a first rung at epoch 2
    controller = SimpleNamespace(get_trials=lambda: [default, *trials])
    assert scheduler.choose_trial_to_run(controller) is default  # the default runs first, in no bracket


def test_asha_forgets_a_trial_its_health_check_stopped():
    # rung at epoch 2, reduction factor 3: a trial continues when it is at least as good as the
    # 67th percentile (of -loss) of those recorded, i.e. in their best third
    asha = DefaultKeepingASHA({"optim/lr": 0.0}, metric="loss", mode="min", time_attr="epoch", max_t=10,
                              grace_period=2, reduction_factor=3)
    fast = [Trial(1e-3 * (i + 1)) for i in range(3)]
    healthy = Trial(5e-3)
    for trial in [*fast, healthy]:
        trial.trial_id = f"t{trial.config['optim']['lr']}"
        asha.on_trial_add(None, trial)
    for trial, loss in zip(fast, (0.33, 0.32, 0.31)):  # each better than those before it: all continue
        assert asha.on_trial_result(None, trial, {"epoch": 2, "loss": loss}) == "CONTINUE"
    # the fast three stop themselves at epoch 3 (loss imbalance): their epoch-2 values are forgotten
    for trial in fast:
        asha.on_trial_result(None, trial, {"epoch": 3, "loss": 0.26, "stop_reason": "loss_imbalance"})
        asha.on_trial_complete(None, trial, {"epoch": 3, "loss": 0.26, "stop_reason": "loss_imbalance"})
    # else 0.41 would be cut against the 67th percentile of (-0.33, -0.32, -0.31), about -0.317
    assert asha.on_trial_result(None, healthy, {"epoch": 2, "loss": 0.41}) == "CONTINUE"
    late = Trial(6e-3)
    late.trial_id = "late"
    asha.on_trial_add(None, late)
    assert asha.on_trial_result(None, late, {"epoch": 2, "loss": 0.45}) == "STOP"  # behind the healthy 0.41


def pbt_population(scores: dict[float, float]):
    """A PBT scheduler and its trials by lr, each with its score at its last perturbation."""
    scheduler = DefaultKeepingPBT(DEFAULT, "/tmp/sweeps", epochs=8, metric="m", mode="min", time_attr="epoch",
                                  perturbation_interval=2, hyperparam_mutations={"optim": {"lr": [1e-3, 2e-3]}})
    controller = SimpleNamespace(search_alg=None)
    trials = {}
    for lr, score in scores.items():
        trials[lr] = Trial(lr, status="RUNNING")
        scheduler.on_trial_add(controller, trials[lr])
        scheduler._trial_state[trials[lr]].last_score = score
    return scheduler, trials


def test_pbt_never_puts_the_default_in_its_lower_quantile():
    # the default (lr 1e-3) scores worst of four: Tune's lower quantile (a quarter: one trial) would be
    # the default, which is never exploited, so no trial ever would be
    scheduler, trials = pbt_population({1e-3: -9.0, 2e-3: -5.0, 3e-3: -1.0, 4e-3: -3.0})
    lower, upper = scheduler._quantiles()
    assert lower == [trials[2e-3]] and upper == [trials[3e-3]]
    scheduler, trials = pbt_population({1e-3: -1.0, 2e-3: -5.0, 3e-3: -9.0, 4e-3: -3.0})
    assert scheduler._quantiles() == ([trials[3e-3]], [trials[1e-3]])  # the default may be the donor


def test_pbts_donor_checkpoint_is_the_train_checkpoint_of_its_perturbation_epoch():
    scheduler, trials = pbt_population({1e-3: -1.0, 2e-3: -2.0})
    donor = trials[2e-3]
    scheduler._trial_state[donor].last_result = {"epoch": 2, "checkpoint_path": "/tmp/sweeps/s/trainer_runs/a/ck_2"}
    # not in the upper quantile at its own perturbation (it reported first: no one to rank it against),
    # yet a donor later: its checkpoint is kept all the same (Train has saved it)
    scheduler._checkpoint_or_exploit(donor, None, upper_quantile=[], lower_quantile=[])
    checkpoint = scheduler._trial_state[donor].last_checkpoint
    assert isinstance(checkpoint, ray.train.Checkpoint) and checkpoint.path == "/tmp/sweeps/s/trainer_runs/a/ck_2"
    # an epoch without a checkpoint gives nothing to exploit (Tune then skips the exploit)
    scheduler._trial_state[donor].last_result = {"epoch": 3}
    scheduler._checkpoint_or_exploit(donor, None, upper_quantile=[donor], lower_quantile=[])
    assert scheduler._trial_state[donor].last_checkpoint is None


def test_trials_in_their_own_process_give_pbt_their_last_tune_checkpoint(monkeypatch):
    # every trial's save is asked for at its perturbation, not only an upper-quantile one's (a
    # function trainable's save returns the checkpoint it last reported: nothing is written);
    # a paused trial gives the one it holds; the donor's saved checkpoint is what the exploit clones
    from ray.tune.schedulers.pbt import _FutureTrainingResult

    scheduler, trials = pbt_population({1e-3: -1.0, 2e-3: -3.0, 3e-3: -5.0})
    scheduler._train_checkpoints = False
    donor, recipient = trials[2e-3], trials[3e-3]
    saved = SimpleNamespace(checkpoint="donor checkpoint", metrics={"epoch": 2})
    future = _FutureTrainingResult(None)
    monkeypatch.setattr(future, "resolve", lambda: saved)
    controller = SimpleNamespace(_schedule_trial_save=lambda trial, result: future, search_alg=None)
    scheduler._trial_state[donor].last_result = {"epoch": 2}
    scheduler._checkpoint_or_exploit(donor, controller, upper_quantile=[], lower_quantile=[])
    assert scheduler._trial_state[donor].last_checkpoint is future
    paused = Trial(4e-3, status="PAUSED")
    scheduler.on_trial_add(controller, paused)
    paused.checkpoint = "held checkpoint"
    scheduler._checkpoint_or_exploit(paused, controller, upper_quantile=[], lower_quantile=[])
    assert scheduler._trial_state[paused].last_checkpoint == "held checkpoint"
    exploited = []
    monkeypatch.setattr(scheduler, "_exploit", lambda ctrl, trial, clone: exploited.append((trial, clone)))
    scheduler._trial_state[recipient].last_result = {"epoch": 2}
    scheduler._checkpoint_or_exploit(recipient, controller, upper_quantile=[donor], lower_quantile=[recipient])
    assert exploited == [(recipient, donor)]
    assert scheduler._trial_state[donor].last_checkpoint == "donor checkpoint"
    assert scheduler._trial_state[donor].last_result == {"epoch": 2}


def test_explore_stays_inside_the_space():
    assert mutations(SPACE)["schedule"]["kind"] == ["cosine", "constant"]  # PBT moves a choice to a neighbour
    assert bounds(SPACE) == {"optim": {"lr": [1e-4, 1e-2], "steps": [1, 4]}}  # PB2: numbers only; randint's top is 4
    clip = within(SPACE)
    config = clip({"optim": {"lr": 1.2e-2, "steps": 5}, "schedule": {"kind": "cosine"}})
    assert config == {"optim": {"lr": 1e-2, "steps": 4}, "schedule": {"kind": "cosine"}}
    assert clip({"optim": {"lr": 5e-3, "steps": 2}, "schedule": {"kind": "constant"}})["optim"] == {"lr": 5e-3,
                                                                                                   "steps": 2}


def test_a_population_sweep_of_one_seed_draws_the_same_perturbations():
    from ray.tune.schedulers.pbt import _explore

    from losstune.ray_jobs.search.schedulers import make_scheduler

    def explored(seed: int) -> list:
        plan = SimpleNamespace(scheduler="pbt", seed=seed, grace_epochs=2, epochs=8, default_point=DEFAULT,
                               storage="/tmp/sweeps", population_sync=False, resources=TrialResources())
        make_scheduler(plan, SPACE)  # seeds the draws
        config = {"optim": {"lr": 1e-3, "steps": 2}, "schedule": {"kind": "cosine"}}
        return [_explore(config, mutations(SPACE), 0.25, [1.2, 0.8], within(SPACE))[0] for _ in range(5)]

    assert explored(7) == explored(7)
    assert explored(7) != explored(8)


def test_population_sync_makes_tunes_pbt_and_pb2_rank_in_step():
    from losstune.ray_jobs.search.schedulers import make_scheduler

    space = {"optim": {"lr": tune.loguniform(1e-4, 1e-2)}}
    for scheduler in ("pbt", "pb2"):
        for sync in (False, True):
            plan = SimpleNamespace(scheduler=scheduler, seed=0, grace_epochs=2, epochs=8, default_point=DEFAULT,
                                   storage="/tmp/sweeps", population_sync=sync, resources=TrialResources())
            assert make_scheduler(plan, space)._synch is sync
    # what a donor's checkpoint is: a Tune checkpoint where trials train in their own process
    assert make_scheduler(plan, space)._train_checkpoints is False
    worker_groups = SimpleNamespace(**{**vars(plan), "resources": TrialResources(worker_group=True)})
    assert make_scheduler(worker_groups, space)._train_checkpoints is True


def test_a_continued_run_is_named_by_its_trial_and_the_donors_checkpoint():
    assert run_name("b_00001", None) == "b_00001"
    donor = ray.train.Checkpoint("/s/x/trainer_runs/b_00003-from-b_00000-checkpoint_4/checkpoint_7")
    assert run_name("b_00001", donor) == "b_00001-from-b_00003-checkpoint_7"


def test_lineage_and_the_rate_followed_read_from_the_history():
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "lr": [1e-3, 1e-3, 8e-4, 6e-4],
                            "run": ["b_00003", "b_00003", "b_00001-from-b_00003-c", "b_00001-from-b_00003-c"]})
    assert lineage(history) == "b_00003 e1-2 > b_00001 e3-4"
    assert lr_by_epoch(history) == "0.001 0.001 0.0008 0.0006"
    assert lineage(history.drop(columns="run")) == ""
