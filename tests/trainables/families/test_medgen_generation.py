"""Sampling with a medgen_diffusion network (trainables/families/medgen_generation.py): the
strategies' conventions checked against an oracle network that knows the image to reach."""

import pytest
import torch

from losstune.trainables.family_api import make_config
from losstune.search_spaces.registry import load_family
from losstune.trainables.families.medgen_generation import generate


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
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)

    def forward(self, x, timesteps, context=None):
        return self.conv(x)


@pytest.mark.parametrize("strategy, size", [("rflow", (16, 16)), ("ddpm", (16, 16)), ("rflow", (8, 8, 8))])
def test_sampling_with_a_network_that_knows_the_image_reaches_it(strategy, size):
    # RFlow: each Euler step moves x_t along the straight line to x0, so the last lands on it.
    # DDPM: the predicted x0 is exact at every step; at the last (t = 0, abar_prev = 1) the
    # posterior mean's coefficients are 1 on x0 and 0 on x_t, so the sample is x0.
    from losstune.trainables.families.medgen_steps import scheduler_of

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
    assert torch.equal(first, again) and not torch.equal(first, generate(net, cfg, empty, (1, 16, 16), seed=1))
