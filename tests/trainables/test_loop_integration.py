"""Every family trains a few steps through a real TorchTrainer on CPU, reports the documented
metrics and a checkpoint, and resumes from it; a one-worker run trains without DDP."""

import json
import os

import pytest

from losstune.trainables.config import merge
from losstune.trainables.families import FAMILIES, load_family, make_config
from losstune.trainables.ray_session import train_loop

pytestmark = pytest.mark.integration

DOCUMENTED = ["epoch", "train/loss", "lr", "grad_norm", "samples_per_s", "peak_mem_mb", "health/nonfinite",
              "health/max_term_share", "health/grad_norm_out_of_range", "stop_reason", "time/epoch_s", "restarts",
              "node"]


# Tiny runs may trip a family's health thresholds (the hdr default overflows early): this test
# is about the plumbing, so those stops are off here and tested in the sweep tests.
LENIENT = {"hdr_patch": {"health": {"max_overflow_frac": 1.0}}}
# Every loss term on, and the adaptive weighter's own optimiser in the checkpoint.
PRESET = {"latent_conditioner": "large_dataset", "lgt": "regularised", "npt": "all_terms",
          "medgen_diffusion": "regularised"}
# The shared loop's optimiser options (SAM's second pass, EMA weights in the checkpoint, the
# plateau scheduler's state), on for one family.
OPTIMISER_OPTIONS = {"medgen_diffusion": {"optim": {"sam_rho": 0.05, "ema_decay": 0.9},
                                          "schedule": {"kind": "plateau"}}}


def smoke_config(family) -> dict:
    module = load_family(family)
    preset = module.presets[PRESET[family]] if family in PRESET else {}
    return merge(merge(merge(preset, module.smoke), LENIENT.get(family, {})), OPTIMISER_OPTIONS.get(family, {}))


def term_names(family, config) -> list[str]:
    """The loss terms a family reports: one per weight its term_weights names (by default, one per
    loss weight of its config)."""
    resolved = load_family(family)
    return list(resolved.term_weights(make_config(resolved, config)))


def fit(family, config, storage, name, epochs_seen_file, max_failures=0, workers=1):
    import ray.train
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
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


# Families whose checkpoint holds more than model, optimiser and scheduler (the adaptive weighter's
# optimiser; NPT's step counter and gradient-norm EMA; medgen's EMA weights, plateau state and
# curriculum epoch), and hdr_patch for the plain case: their run loses its worker in epoch 3 and
# must resume from the epoch-2 checkpoint. lgt's state is the plain case, and its run takes a
# minute here, so it trains 2 epochs without the crash.
RESUME_FAMILIES = ["hdr_patch", "latent_conditioner", "npt", "medgen_diffusion", "medgen_compression"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_run_reports_every_metric_and_a_checkpoint_and_resumes_from_it(local_ray, tmp_path, family,
                                                                          inject_faults):
    module = load_family(family)
    resumes = family in RESUME_FAMILIES
    epochs = 3 if resumes else 2
    if resumes:
        inject_faults(crash_at_epoch=3)
    config = merge(smoke_config(family), {"train": {"epochs": epochs, "checkpoint_every": 1}})
    log = tmp_path / "epochs.jsonl"
    result = fit(family, config, tmp_path, "run", log, max_failures=1)
    metrics = result.metrics
    expected = [name for name in DOCUMENTED] + [module.objective.metric] + [
        f"health/{n}" for n in module.watched_val_metrics]
    missing = [name for name in expected if name not in metrics]
    assert not missing, missing
    for term in term_names(family, config):
        assert f"train/{term}" in metrics and f"train/weighted/{term}" in metrics
    assert metrics["epoch"] == epochs and metrics["stop_reason"] == "" and result.error is None
    # with the crash: epochs 1-2, then a restarted worker continues at 3 (starting over would repeat 1, 2)
    assert [s["epoch"] for s in seen(log)] == list(range(1, epochs + 1)) and all(s["checkpoint"] for s in seen(log))
    assert metrics["restarts"] == (1 if resumes else 0)
    files = os.listdir(result.checkpoint.path)
    assert "losstune_state.json" in files and any(f.startswith("model") for f in files)
    assert any(f.startswith("optimizer") for f in files) and any(f.startswith("scheduler") for f in files)
    if family == "medgen_compression":  # both optimisers continued: each has stepped for all 3 epochs
        import torch

        steps = [{float(s["step"]) for s in torch.load(os.path.join(result.checkpoint.path, name),
                                                        weights_only=False)["state"].values()}
                 for name in ("optimizer.bin", "optimizer_1.bin")]
        assert steps[0] == steps[1] and len(steps[0]) == 1 and steps[0].pop() % epochs == 0
    if family in OPTIMISER_OPTIONS:  # the EMA weights and the plateau state, registered with Accelerate
        assert {"custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl"} <= set(files)


def test_validation_every_n_epochs_carries_the_latest_values(local_ray, tmp_path):
    # val_every 5 over 3 epochs: the first and the last epoch validate, the second reports epoch 1's
    config = merge(smoke_config("hdr_patch"), {"train": {"epochs": 3, "val_every": 5, "checkpoint_every": 0}})
    log = tmp_path / "epochs.jsonl"
    fit("hdr_patch", config, tmp_path, "run", log)
    assert [s["val_epoch"] for s in seen(log)] == [1, 1, 3]


def test_a_finished_run_started_again_reports_its_end_once_more(local_ray, tmp_path):
    # a sweep's driver that dies after a trial's last checkpoint, before Tune records the trial,
    # restarts it on --resume: the run has nothing left to train, but Tune needs a result
    config = merge(smoke_config("hdr_patch"), {"train": {"epochs": 2, "checkpoint_every": 1}})
    log = tmp_path / "epochs.jsonl"
    first = fit("hdr_patch", config, tmp_path, "run", log)
    again = fit("hdr_patch", config, tmp_path, "run", log)
    assert [s["epoch"] for s in seen(log)] == [1, 2, 2]  # no epoch trained twice, the end reported again
    objective = load_family("hdr_patch").objective.metric
    assert again.metrics["epoch"] == 2 and again.metrics[objective] == first.metrics[objective]
    assert seen(log)[-1]["checkpoint"] is False  # a report, not a new checkpoint


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

    from losstune.trainables.worker_setup import make_accelerator

    import ray.train

    accelerator = make_accelerator(make_config(load_family("hdr_patch"), config), ray.train.get_context().get_world_size())
    model = accelerator.prepare(torch.nn.Linear(2, 2))
    return {"ddp": isinstance(model, torch.nn.parallel.DistributedDataParallel), "processes": accelerator.num_processes}


@pytest.mark.parametrize("workers", [1, 2])
def test_the_model_is_wrapped_in_ddp_only_when_the_run_has_several_workers(local_ray, tmp_path, workers):
    # DDP over a world of one would all-reduce gradients with nobody (2.3% of an hdr_patch step)
    import ray.train
    from ray.train.torch import TorchTrainer

    result = TorchTrainer(accelerate_mode, train_loop_config={},
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

    from losstune.trainables.families import load_family
    from losstune.trainables.ray_session import train_in_ray

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
    from ray.train.torch import TorchTrainer

    loop = merge(smoke_config("medgen_diffusion"), {"optim": {"grad_noise_sigma": 0.01, "sam_rho": 0.0},
                                                    "train": {"epochs": 1}})
    result = TorchTrainer(recording_medgen, train_loop_config={"loop": loop, "out": str(tmp_path)},
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

    from losstune.trainables.families import load_family
    from losstune.trainables.ray_session import train_in_ray

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
    from ray.train.torch import TorchTrainer

    loop = merge(smoke_config("medgen_compression"), {"gan": {"start_epoch": 1}, "train": {"epochs": 2}})
    result = TorchTrainer(recording_compression, train_loop_config={"loop": loop, "out": str(tmp_path)},
                          scaling_config=ray.train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
                          run_config=ray.train.RunConfig(name="gan", storage_path=str(tmp_path))).fit()
    assert result.error is None, result.error
    ranks = [json.load(open(tmp_path / f"rank{r}.json")) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) >= 4
    for part in ("autoencoder", "discriminator"):
        assert [a[part] for a in ranks[0]] == pytest.approx([b[part] for b in ranks[1]], rel=1e-9, abs=1e-9), part
        assert ranks[0][0][part] != ranks[0][-1][part], part  # and both trained
