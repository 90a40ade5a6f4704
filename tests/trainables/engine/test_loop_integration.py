"""The loop through a real TorchTrainer on CPU, where only real processes show it: a worker lost
and restarted by Ray Train ends where an uninterrupted run does, a one-worker run trains without
DDP, two workers keep one schedule, draw their own randomness and keep the same weights. Every
family's reporting, checkpoints and resume are tested in this process (test_loop_in_process.py)."""

import json
import os

import pytest

from losstune.trainables.config import merge
from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family
from losstune.trainables.engine.ray_session import train_loop

from tests.trainables.smoke_runs import smoke_config

pytestmark = pytest.mark.integration

def trainer_of(*args, **kwargs):
    """A TorchTrainer as the platform builds one: without the DatasetManager actor Ray Train starts
    for every run (trainables.engine.ray_workarounds). Left in, it outlived these runs and failed the
    sweep test's check that a sweep starts none, whenever this file ran first."""
    from ray.train.torch import TorchTrainer

    from losstune.trainables.engine.ray_workarounds import without_an_idle_dataset_manager

    return without_an_idle_dataset_manager(TorchTrainer(*args, **kwargs))


def fit(family, config, storage, name, epochs_seen_file, max_failures=0, workers=1):
    import ray.train

    trainer = trainer_of(
        train_loop(load_family(family)),
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(num_workers=workers, resources_per_worker={"CPU": 1 / workers}),
        run_config=ray.train.RunConfig(name=name, storage_path=str(storage), callbacks=[EpochRecorder(epochs_seen_file)],
                                       failure_config=ray.train.FailureConfig(max_failures=max_failures)),
    )
    return trainer.fit()


from ray.train.v2.api.callback import UserCallback  # noqa: E402


class EpochRecorder(UserCallback):
    """Appends each reported epoch to a file (callbacks run in Train's controller process)."""

    def __init__(self, path):
        self.path = str(path)

    def after_report(self, run_context, metrics, checkpoint):
        with open(self.path, "a") as f:
            f.write(json.dumps({"epoch": metrics[0]["epoch"], "checkpoint": checkpoint is not None,
                                "val_epoch": metrics[0].get("val_epoch"), "lr": metrics[0].get("lr")}) + "\n")


def seen(path):
    return [json.loads(line) for line in open(path)]


def test_a_run_that_lost_its_worker_ends_where_an_uninterrupted_run_does(local_ray, tmp_path, inject_faults):
    # the resumed worker must draw epoch 3's shuffle, not epoch 1's again: same data order, same
    # weights, the same final numbers to the last bit (one CPU worker is deterministic)
    config = merge(smoke_config("hdr_patch"), {"train": {"epochs": 3, "checkpoint_every": 1}})
    straight = fit("hdr_patch", config, tmp_path, "straight", tmp_path / "straight.jsonl")
    inject_faults(crash_at_epoch=3)
    resumed = fit("hdr_patch", config, tmp_path, "resumed", tmp_path / "resumed.jsonl", max_failures=1)
    assert resumed.metrics["restarts"] == 1 and straight.metrics["restarts"] == 0
    objective = load_family("hdr_patch").objective.metric
    for name in ("train/loss", objective):
        assert resumed.metrics[name] == straight.metrics[name], name


def accelerate_mode(config):
    import torch

    from losstune.trainables.engine.worker_setup import make_accelerator

    import ray.train

    accelerator = make_accelerator(make_config(load_family("hdr_patch"), config), ray.train.get_context().get_world_size())
    model = accelerator.prepare(torch.nn.Linear(2, 2))
    return {"ddp": isinstance(model, torch.nn.parallel.DistributedDataParallel), "processes": accelerator.num_processes}


@pytest.mark.parametrize("workers", [1, 2])
def test_the_model_is_wrapped_in_ddp_only_when_the_run_has_several_workers(local_ray, tmp_path, workers):
    # DDP over a world of one would all-reduce gradients with nobody (2.3% of an hdr_patch step)
    import ray.train

    result = trainer_of(accelerate_mode, train_loop_config={},
                          scaling_config=ray.train.ScalingConfig(num_workers=workers, resources_per_worker={"CPU": 0.5}),
                          run_config=ray.train.RunConfig(name="mode", storage_path=str(tmp_path))).fit()
    assert result.return_value == {"ddp": workers > 1, "processes": workers}  # rank 0's


def test_two_workers_train_with_ddp_on_the_same_schedule_as_one(local_ray, tmp_path):
    # hdr_patch smoke: 64 training patches in batches of 16, 4 steps an epoch on one worker, 2 on
    # each of two. The LR schedule is counted in the one-worker steps and Accelerate steps it once
    # per worker, so both runs must report the same rate after each epoch (2 steps counted once
    # would leave two workers' cosine half-way down after the last epoch).
    config = merge(smoke_config("hdr_patch"), {"train": {"epochs": 2, "checkpoint_every": 1}})
    fit("hdr_patch", config, tmp_path, "one", tmp_path / "one.jsonl")
    two = fit("hdr_patch", config, tmp_path, "two", tmp_path / "two.jsonl", workers=2)
    assert two.error is None and two.metrics["stop_reason"] == ""
    one_lr, two_lr = ([s["lr"] for s in seen(tmp_path / f"{n}.jsonl")] for n in ("one", "two"))
    assert len(two_lr) == 2 and two_lr == pytest.approx(one_lr)
    assert two_lr[0] > two_lr[1]


def recording_medgen(config):
    """medgen_diffusion's loop, recording on each worker the mean training time t it drew and a
    checksum of its weights at every step, to a file of its own."""
    import ray.train

    import dataclasses

    from losstune.trainables.registry import load_family
    from losstune.trainables.engine.ray_session import train_in_ray

    rank = ray.train.get_context().get_world_rank()
    steps = []
    medgen = load_family("medgen_diffusion")

    def loss_terms(model, batch, cfg):
        terms, health = medgen.loss_terms(model, batch, cfg)
        checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
        steps.append({"t_mean": float(health["t_mean"]), "weights": checksum})
        return terms, health

    train_in_ray(dataclasses.replace(medgen, loss_terms=loss_terms), config["loop"])
    with open(os.path.join(config["out"], f"rank{rank}.json"), "w") as f:
        json.dump(steps, f)


def test_each_worker_draws_its_own_timesteps_and_all_keep_the_same_weights(local_ray, tmp_path):
    # Two DDP workers: with one seed for both they drew the same timesteps and noise every step.
    # Gradient noise (added after the all-reduce) is on: it must stay the same on both, or their
    # weights would drift apart.
    import ray.train

    loop = merge(smoke_config("medgen_diffusion"), {"optim": {"grad_noise_sigma": 0.01, "sam_rho": 0.0},
                                                    "train": {"epochs": 1}})
    result = trainer_of(recording_medgen, train_loop_config={"loop": loop, "out": str(tmp_path)},
                          scaling_config=ray.train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
                          run_config=ray.train.RunConfig(name="ranks", storage_path=str(tmp_path))).fit()
    assert result.error is None
    ranks = [json.load(open(tmp_path / f"rank{r}.json")) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) >= 2
    assert all(a["t_mean"] != b["t_mean"] for a, b in zip(*ranks))
    assert [a["weights"] for a in ranks[0]] == pytest.approx([b["weights"] for b in ranks[1]], rel=1e-9, abs=1e-9)
    assert ranks[0][0]["weights"] != ranks[0][-1]["weights"]  # and they did train


def recording_compression(config):
    """medgen_compression's loop, recording on each worker a checksum of the autoencoder's and of
    the discriminator's weights at every step, to a file of its own."""
    import dataclasses

    import ray.train

    from losstune.trainables.registry import load_family
    from losstune.trainables.engine.ray_session import train_in_ray

    rank = ray.train.get_context().get_world_rank()
    steps = []
    compression = load_family("medgen_compression")

    def loss_terms(model, batch, cfg):
        inner = getattr(model, "module", model)
        steps.append({part: sum(float(p.detach().double().sum()) for p in getattr(inner, part).parameters())
                      for part in ("autoencoder", "discriminator")})
        return compression.loss_terms(model, batch, cfg)

    train_in_ray(dataclasses.replace(compression, loss_terms=loss_terms), config["loop"])
    with open(os.path.join(config["out"], f"rank{rank}.json"), "w") as f:
        json.dump(steps, f)


def test_two_workers_keep_the_same_generator_and_discriminator(local_ray, tmp_path):
    # DDP over a GAN: both networks' gradients are averaged across the workers, before the
    # adversarial start (epoch 1: the discriminator has no loss yet) and after it.
    import ray.train

    loop = merge(smoke_config("medgen_compression"), {"gan": {"start_epoch": 1}, "train": {"epochs": 2}})
    result = trainer_of(recording_compression, train_loop_config={"loop": loop, "out": str(tmp_path)},
                          scaling_config=ray.train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
                          run_config=ray.train.RunConfig(name="gan", storage_path=str(tmp_path))).fit()
    assert result.error is None, result.error
    ranks = [json.load(open(tmp_path / f"rank{r}.json")) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) >= 4
    for part in ("autoencoder", "discriminator"):
        assert [a[part] for a in ranks[0]] == pytest.approx([b[part] for b in ranks[1]], rel=1e-9, abs=1e-9), part
        assert ranks[0][0][part] != ranks[0][-1][part], part  # and both trained
