"""ScoreAug and SDA in medgen_diffusion's step (trainables/families/medgen/augment.py)."""

import random
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader

from losstune.losses.diffusion import model_timesteps, target
from losstune.trainables.registry import load_family
from losstune.trainables.config import ConfigError, merge
from losstune.trainables.families.medgen import diffusion as medgen_diffusion
from losstune.trainables.families.medgen.augment import draw, omega_classes
from losstune.trainables.families.medgen.augment_config import ScoreAugConfig
from losstune.trainables.family_api import make_config

FAMILY = load_family("medgen_diffusion")


def smoke(overrides):
    return make_config(FAMILY, merge(FAMILY.smoke, overrides))


def test_scoreaug_transforms_the_noisy_input_the_mask_and_the_target_alike():
    # RFlow: x_t = (1 - t) x0 + t noise and target = x0 - noise, so x_t = x0 - t target. The
    # transforms are linear, so the transformed x_t, x0 and target keep that relation exactly,
    # and the mask moves with the image: what a sample's transform did to the image it did to both
    cfg = smoke({"score_aug": {"enabled": True, "translation": True, "cutout": True}})
    x0, noise, cond = torch.rand(6, 1, 8, 8), torch.randn(6, 1, 8, 8), (torch.rand(6, 1, 8, 8) > 0.5).float()
    t = torch.rand(6).reshape(-1, 1, 1, 1)
    torch.manual_seed(3)
    x_t, goal, clean, omega, _ = medgen_diffusion.score_augmented(cfg, (1 - t) * x0 + t * noise, target("rflow", x0, noise),
                                                                   x0, cond)
    assert torch.allclose(x_t, clean["x0"] - t * goal, atol=1e-6)
    torch.manual_seed(3)  # the same draws, applied to an image that is its own mask
    _, _, moved, _, _ = medgen_diffusion.score_augmented(cfg, x0, x0, cond, cond)
    assert torch.equal(moved["x0"], moved["cond"])
    assert omega is not None and omega.shape == (6,) and set(omega.tolist()) <= set(range(8))


def test_omega_reaches_the_unets_time_embedding():
    cfg = smoke({"score_aug": {"enabled": True}})
    assert omega_classes(cfg) == 8 and omega_classes(smoke({"score_aug": {"enabled": True, "v2_mode": True}})) == 8 * 17
    model = FAMILY.build(cfg).model.eval()
    for parameter in model.parameters():  # MONAI zeroes the output convolution: every output would be 0
        if parameter.ndim > 1 and not parameter.any():
            torch.nn.init.normal_(parameter, std=0.1)
    x, timesteps = torch.rand(2, 2, 32, 32), torch.tensor([500.0, 500.0])
    upright, turned = model(x, timesteps, omega=torch.tensor([0, 0])), model(x, timesteps, omega=torch.tensor([1, 1]))
    assert not torch.allclose(upright, turned)  # the network is told the transform
    assert torch.equal(model(x, timesteps), upright)  # none given: the identity, as sampling asks


def test_each_mode_draws_what_the_seed_says():
    rng = random.Random(0)
    single = [draw(ScoreAugConfig(enabled=True), 8, 8, rng) for _ in range(400)]
    kinds = {"rotation": sum(t.element in (1, 2, 3) for t in single), "flip": sum(t.element in (4, 6) for t in single),
             "none": sum(t.element == 0 for t in single)}
    assert all(100 < n < 170 for n in kinds.values()) and all(t.invertible for t in single)  # a third each
    composed = [draw(ScoreAugConfig(enabled=True, compose=True, compose_prob=1.0), 8, 8, rng) for _ in range(50)]
    # every kind at probability 1: turned and flipped, which lands on one of the 4 flipped symmetries
    assert all(t.element >= 4 for t in composed) and len({t.element for t in composed}) == 4
    v2 = [draw(ScoreAugConfig(enabled=True, v2_mode=True, destructive_prob=1.0, cutout_vs_pattern=0.0), 8, 8, rng)
          for _ in range(50)]
    assert all(t.pattern is not None and t.cut is None and t.omega >= 8 for t in v2)  # a fixed pattern, announced


def test_scoreaug_and_sda_are_alternatives_and_a_rotation_needs_a_square_plane():
    with pytest.raises(ConfigError, match="sda.enabled.*use one"):
        smoke({"score_aug": {"enabled": True}, "sda": {"enabled": True}})
    with pytest.raises(ConfigError, match="score_aug.rotation.*H != W"):
        smoke({"score_aug": {"enabled": True}, "model": {"spatial_dims": 3}, "data": {"volume": [32, 16, 32]}})


def test_sda_trains_a_second_path_rotated_or_flipped_at_a_later_time(monkeypatch):
    cfg = smoke({"sda": {"enabled": True, "prob": 1.0, "noise_shift": 0.2, "rotation": False}})
    seen = []

    def recording(model, x0, noise, timesteps, cond, scheduler):
        seen.append(SimpleNamespace(x0=x0, timesteps=timesteps, cond=cond))
        return torch.zeros_like(x0)
    monkeypatch.setattr(medgen_diffusion, "predict", recording)
    x0, cond = torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8)
    t = torch.tensor([0.1, 0.5, 0.95])
    term = medgen_diffusion.shifted_path(None, cfg, medgen_diffusion.scheduler_of(cfg), x0, cond, t)
    [path] = seen
    # t + 0.2, at most 1; flips only (along W or H), the mask moved with its image
    assert torch.equal(path.timesteps, model_timesteps("rflow", torch.tensor([0.3, 0.7, 1.0]), 1000))
    for k in range(3):
        along = 2 if path.x0[k].equal(x0[k].flip(2)) else 1  # along W, else it must be along H
        assert path.x0[k].equal(x0[k].flip(along)) and path.cond[k].equal(cond[k].flip(along))
    assert term > 0 and FAMILY.term_weights(cfg) == {"mse": 1.0, "sda": 1.0}


def test_both_presets_take_a_training_step():
    for preset in ("score_aug", "score_aug_v2", "sda"):
        cfg = smoke(FAMILY.presets[preset])
        parts = FAMILY.build(cfg)
        terms, _ = FAMILY.loss_terms(parts.model, next(iter(DataLoader(parts.train_set, batch_size=4))), cfg)
        assert all(torch.isfinite(v) for v in terms.values()), preset


def test_the_sda_term_worked_by_hand(monkeypatch):
    # x0 = 0.5 everywhere, the path's noise 0 and a network that predicts 0: RFlow's target is
    # x0 - noise = 0.5 after any flip of a constant image, so the term is (0 - 0.5)^2 = 0.25, unweighted
    cfg = smoke({"sda": {"enabled": True, "prob": 1.0}})
    monkeypatch.setattr(medgen_diffusion, "predict", lambda model, x0, noise, t, cond, scheduler: torch.zeros_like(x0))
    monkeypatch.setattr(medgen_diffusion.torch, "randn_like", torch.zeros_like)
    x0 = torch.full((2, 1, 8, 8), 0.5)
    term = medgen_diffusion.shifted_path(None, cfg, medgen_diffusion.scheduler_of(cfg), x0, torch.zeros_like(x0),
                                         torch.tensor([0.3, 0.6]))
    assert float(term) == pytest.approx(0.25)
