import math

import pytest
import torch

from losstune.models.latent_conditioner import (LatentConditioner, LatentConditionerTraining, SoftmaxWeighter,
                                                UncertaintyWeighter)

SMALL = dict(image_size=32, filters=(8, 16), encoder_dim=16)


@pytest.mark.parametrize("options", [
    {}, {"use_attention": False}, {"blocks_per_stage": 2}, {"drop_rate": 0.2}, {"size2": 2, "latent_dim": 4},
])
def test_forward_of_every_option_gives_bounded_latents(options):
    net = LatentConditioner(**{**SMALL, **options})
    main, hier = net(torch.rand(3, 1, 32, 32))
    assert main.shape == (3, 32)
    assert hier.shape == (3, options.get("latent_dim", 8) * options.get("size2", 4))
    assert main.abs().max() < 1 and hier.abs().max() < 1  # Tanh heads


def test_flattened_pixels_as_the_seed_feeds_them_give_the_same_output():
    net = LatentConditioner(**SMALL).eval()
    images = torch.rand(2, 1, 32, 32)
    for a, b in zip(net(images), net(images.flatten(1))):
        torch.testing.assert_close(a, b)


def test_default_parameter_count():
    # seed estimate ~2.1M; one residual block per width of [32, 64, 128, 256] and 256-wide head
    # encoders give 1,390,300 (two blocks per width would give 2,981,240)
    net = LatentConditioner()
    assert sum(p.numel() for p in net.parameters()) == 1_390_300


def test_spectral_norm_where_add_sn_puts_it_and_head_init_is_conservative():
    net = LatentConditioner(**SMALL)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(hasattr(m, "parametrizations") for m in linears)
    assert all(hasattr(block.conv2, "parametrizations") and not hasattr(block.conv1, "parametrizations")
               for block in net.blocks)
    last = net.latent_head[2].parametrizations.weight.original
    bound = 0.1 * math.sqrt(6 / (last.shape[0] + last.shape[1]))  # Xavier uniform, gain 0.1
    assert last.abs().max() <= bound


def test_training_module_freezes_the_perceptual_features():
    model = LatentConditionerTraining(LatentConditioner(**SMALL), 32, 32, adaptive="uncertainty", components=3)
    assert not any(p.requires_grad for p in model.perceptual_main.parameters())
    assert model.weighter.raw.shape == (3,)


def train_weights(weighter, losses, steps=300):
    optimizer = torch.optim.Adam(weighter.parameters(), lr=1e-2)
    for _ in range(steps):
        total, weights = weighter(losses)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    return weights


def test_softmax_weighting_collapses_onto_the_smallest_term():
    # two constant losses 1.0 and 0.1: d total / d log_w moves all weight to the 0.1 term, so the
    # 1.0 term (the seed's "important component") is switched off: the seed's weight collapse
    weights = train_weights(SoftmaxWeighter(2), torch.tensor([1.0, 0.1]), steps=1000)
    assert weights[0] < 0.05 and weights[1] > 1.95


def test_uncertainty_weighting_balances_instead_of_collapsing():
    # optimum of exp(-s) L + s is exp(-s) = 1 / L: weights 1 and 10, none goes to 0 (a bound of
    # 100 leaves that optimum inside)
    weights = train_weights(UncertaintyWeighter(2, bound=100.0), torch.tensor([1.0, 0.1]), steps=1500)
    torch.testing.assert_close(weights, torch.tensor([1.0, 10.0]), rtol=0.05, atol=0.05)


def test_uncertainty_weighting_keeps_a_near_zero_term_within_its_bound():
    # A consistency-like term of 7e-6 would be weighted 1 / 7e-6 = 1.4e5 at the unbounded optimum,
    # replacing the documented weights; bounded at 10 its multiplier ends at 10 (tanh saturated)
    # and the large term's stays at its optimum 1 / 1 = 1.
    weights = train_weights(UncertaintyWeighter(2, bound=10.0), torch.tensor([1.0, 7e-6]), steps=3000)
    assert float(weights.max()) <= 10.0 + 1e-4 and float(weights.min()) >= 0.1 - 1e-4
    assert float(weights[1]) > 9.0 and float(weights[0]) == pytest.approx(1.0, abs=0.05)
