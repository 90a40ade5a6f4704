"""Sampling with a medgen_diffusion network (trainables/families/medgen/generation.py): the
strategies' conventions checked against an oracle network that knows the image to reach."""

import math

import pytest
import torch

from losstune.trainables.family_api import make_config
from losstune.trainables.registry import load_family
from losstune.trainables.families.medgen.generation import generate


class Oracle(torch.nn.Module):
    """A network that predicts exactly what its strategy's target is for one known clean image x0
    (the same for every sample), from x_t and the timestep: RFlow's velocity v = x0 - noise, where
    x_t = (1 - t) x0 + t noise gives noise = (x_t - (1 - t) x0) / t, so v = (x0 - x_t) / t; DDPM's
    noise (x_t - sqrt(abar) x0) / sqrt(1 - abar). It records the conditioning channels it was given."""

    def __init__(self, x0: torch.Tensor, strategy: str, scheduler, channels: int):
        super().__init__()
        self.x0, self.strategy, self.channels = x0, strategy, channels
        self.schedulers = [scheduler]  # a MONAI scheduler is an nn.Module that Module.__setattr__ cannot hold
        self.weight = torch.nn.Parameter(torch.zeros(()))  # a parameter, for the device lookup
        self.seen_conditions = []

    def forward(self, x, timesteps, context=None):
        x_t, condition = x[:, :self.channels], x[:, self.channels:]
        self.seen_conditions.append(condition)
        if self.strategy == "rflow":
            t = (timesteps.float() / self.schedulers[0].num_train_timesteps).reshape(-1, *[1] * (x.ndim - 1))
            return (self.x0 - x_t) / t
        abar = self.schedulers[0].alphas_cumprod[timesteps.long()].reshape(-1, *[1] * (x.ndim - 1))
        return (x_t - abar.sqrt() * self.x0) / (1 - abar).sqrt()


class Plain(torch.nn.Module):
    """A network that predicts no velocity: its samples are their noise, clamped to [0, 1] (its
    weights fixed, so that no draw of the test order's random state saturates them all to 0)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)
        torch.nn.init.zeros_(self.conv.weight)
        torch.nn.init.zeros_(self.conv.bias)

    def forward(self, x, timesteps, context=None):
        return self.conv(x)


@pytest.mark.parametrize("strategy, size", [("rflow", (16, 16)), ("ddpm", (16, 16)), ("rflow", (8, 8, 8))])
def test_sampling_with_a_network_that_knows_the_image_reaches_it(strategy, size):
    # RFlow: each Euler step moves x_t along the straight line to x0, so the last lands on it.
    # DDPM: the predicted x0 is exact at every step; at the last (t = 0, abar_prev = 1) the
    # posterior mean's coefficients are 1 on x0 and 0 on x_t, so the sample is x0.
    from losstune.trainables.families.medgen.steps import scheduler_of

    family = load_family("medgen_diffusion")
    cfg = make_config(family, {"strategy": {"name": strategy}, "generation": {"num_steps": 5},
                               "data": {"image_size": 16}})
    x0 = torch.rand(1, 1, 16, 16) * 0.8 + 0.1
    oracle = Oracle(x0, strategy, scheduler_of(cfg), channels=1)
    masks = (torch.rand(3, 1, 16, 16) > 0.5).float()
    samples = generate(oracle, cfg, masks, (1, 16, 16))
    assert samples.shape == (3, 1, 16, 16)
    # float32: DDPM's noise at t = 0 is divided by sqrt(1 - abar) = sqrt(beta_0) = 0.01, which
    # magnifies rounding (about 1e-6) a hundredfold
    assert torch.allclose(samples, x0.expand(3, -1, -1, -1), atol=1e-5 if strategy == "rflow" else 1e-3)
    # 5 steps, each conditioned on the masks as in training (concatenated after the image)
    assert len(oracle.seen_conditions) == 5 and all(torch.equal(c, masks) for c in oracle.seen_conditions)


def test_the_same_seed_gives_the_same_samples_and_another_seed_others():
    family = load_family("medgen_diffusion")
    cfg = make_config(family, {"generation": {"num_steps": 2}, "data": {"image_size": 16, "mode": "seg"}})
    net = Plain()  # any network: the noise decides
    empty = torch.zeros(2, 0, 16, 16)  # seg mode: unconditioned
    first, again = generate(net, cfg, empty, (1, 16, 16)), generate(net, cfg, empty, (1, 16, 16))
    assert 0 < first.mean() < 1  # noise clamped: about half its values positive
    assert torch.equal(first, again) and not torch.equal(first, generate(net, cfg, empty, (1, 16, 16), seed=1))


class PixelSums(torch.nn.Module):
    """A stand-in feature extractor: each image's pixel sum (a buffer, for the device lookup)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.ones(()))

    def forward(self, images):
        return images.flatten(1).sum(1, keepdim=True) * self.scale


def test_workers_share_the_batches_and_together_have_the_features_one_process_would_have():
    # world 2, batches of 4 of 10 samples: worker 0 generates those starting at 0 and 8, worker 1
    # the one at 4; each batch's noise is seeded by its start, so the pieces are one process's features
    from losstune.trainables.families.medgen import generation

    cfg = make_config(load_family("medgen_diffusion"), {"generation": {"num_steps": 2},
                                                        "data": {"image_size": 16, "mode": "seg"}})
    reference = {"extractors": {"resnet": PixelSums()}, "masks": torch.zeros(10, 0, 16, 16), "sample_shape": (1, 16, 16)}
    alone = generation.generated_features(Plain(), cfg, reference, batch=4)["resnet"]  # outside a process group
    assert alone.shape == (10, 1) and len(alone.unique()) == 10
    first, second = (generation.share(Plain(), cfg, reference, rank, 2, batch=4) for rank in (0, 1))
    assert sorted(first) == [0, 8] and sorted(second) == [4]
    together = {**first, **second}
    assert torch.equal(torch.cat([together[i]["resnet"] for i in (0, 4, 8)]), alone)


@pytest.fixture(scope="module")
def local_extractors(tmp_path_factory):
    return saved_extractors(tmp_path_factory.mktemp("extractors"))


def saved_extractors(folder) -> dict:
    """A randomly initialised ResNet-50 in torchvision's layout and a tiny CLIP vision model, saved
    in `folder` as a user's local weights would be; {generation field: path}."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from tests.models.test_feature_extractors import torchvision_layout_resnet50

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torchvision_layout_resnet50(folder / "resnet50.pth")
    CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8,
        projection_dim=16)).save_pretrained(folder / "clip")
    return {"resnet_weights": str(folder / "resnet50.pth"), "clip_dir": str(folder / "clip")}


def test_a_run_ranked_by_kid_reports_the_seeds_generation_metrics_at_each_validation(local_extractors, tmp_path):
    from losstune.trainables.config import merge
    from losstune.trainables.engine.loop import train
    from losstune.trainables.engine.session import LocalSession
    from losstune.trainables.checkpoint_score import CHECKPOINT_SCORE

    family = load_family("medgen_diffusion")
    generation = {"metrics": True, "objective": "kid", "samples": 8, "kid_subsets": 5, "kid_subset_size": 4,
                  "num_steps": 2, "extended_every": 2, "extended_samples": 12, **local_extractors}
    config = merge(family.smoke, {"train": {"epochs": 2}, "generation": generation})
    assert family.objective_of(make_config(family, config)).metric == "val/kid_mean_val"
    session = LocalSession(str(tmp_path))
    train(family, config, session)
    for report in session.reports:  # both epochs validate (the first and the last)
        for name in ("kid_mean_train", "kid_std_train", "kid_mean_val", "kid_std_val", "cmmd_train", "cmmd_val"):
            assert math.isfinite(report[f"val/{name}"]), name
        assert report[CHECKPOINT_SCORE] == report["val/kid_mean_val"] and report["val/generation_s"] > 0
        # the phantoms' tumours (a few mm to a few cm) fill some RANO-BM size bins
        assert any(math.isfinite(report[f"val/{size}_loss"]) for size in ("tiny", "small", "medium", "large"))
    assert family.tags["val/kid_mean_val"] == "Generation/KID_mean_val" and family.tags["val/cmmd_train"] == "Generation/CMMD_train"
    # the second validation compares with the first: KID_train fell and KID_val rose, or not
    first, second = session.reports
    # FID at the last epoch only (the seed: "only computed at test time")
    assert "val/fid_val" not in first and math.isfinite(second["val/fid_val"]) and second["val/fid_val"] >= 0
    diverged = second["val/kid_mean_train"] < first["val/kid_mean_train"] and second["val/kid_mean_val"] > first["val/kid_mean_val"]
    assert second["val/kid_overfit_evals"] == float(diverged) and first["val/kid_overfit_evals"] == 0
    # the extended metrics (12 samples) every 2nd epoch only, under the seed's tags
    extended = ("kid_mean_train", "kid_std_train", "kid_mean_val", "kid_std_val", "cmmd_train", "cmmd_val")
    assert not any(f"val/extended_{name}" in first for name in extended)
    assert all(math.isfinite(second[f"val/extended_{name}"]) for name in extended)
    assert family.tags["val/extended_kid_mean_val"] == "Generation/extended_KID_mean_val"
    assert family.tags["val/extended_cmmd_train"] == "Generation/extended_CMMD_train"


def test_generation_metrics_need_local_weights_named_in_one_line(tmp_path):
    from losstune.trainables.config import ConfigError

    family = load_family("medgen_diffusion")
    with pytest.raises(ConfigError, match="^generation.resnet_weights is not set: generation.metrics needs a local ResNet-50"):
        make_config(family, {"generation": {"metrics": True}})
    with pytest.raises(ConfigError, match=f"resnet_weights.*{tmp_path}/none.pth: no such file"):
        make_config(family, {"generation": {"metrics": True, "resnet_weights": str(tmp_path / "none.pth")}})
    with pytest.raises(ConfigError, match="objective.*kid needs generation.metrics=true"):
        make_config(family, {"generation": {"objective": "kid"}})


def test_the_overfitting_signal_stops_a_run_only_where_asked():
    family = load_family("medgen_diffusion")
    metrics = {"epoch": 5, "health/timestep_bin_ratio": 1.0, "val/kid_overfit_evals": 3.0}
    assert family.stop_reason(metrics, make_config(family)) == ""
    asked = make_config(family, {"generation": {"stop_on_overfit": True, "patience": 3}})
    assert family.stop_reason(metrics, asked) == "generation_overfitting"
    assert family.stop_reason({**metrics, "val/kid_overfit_evals": 2.0}, asked) == ""


def exchange_in_a_group(rank: int, world: int, port: int, results) -> None:
    import torch.distributed as dist

    from losstune.trainables.families.medgen.generation import exchanged

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        mine = {rank * 4: {"resnet": torch.full((4, 1), float(rank))}}
        results.put((rank, {start: f["resnet"].tolist() for start, f in exchanged(mine, world).items()}))
    finally:
        dist.destroy_process_group()


def test_the_features_exchange_over_a_real_process_group():
    # two real processes in a gloo group: all_gather_object is what DDP workers run, and it cannot
    # be had in one process
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = mp.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=exchange_in_a_group, args=(rank, 2, port, results)) for rank in (0, 1)]
    for worker in workers:
        worker.start()
    got = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    expected = {0: [[0.0]] * 4, 4: [[1.0]] * 4}
    assert got == {0: expected, 1: expected}
