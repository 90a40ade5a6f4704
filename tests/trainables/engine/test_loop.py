"""The shared loop's step with several optimiser groups, without Ray."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from accelerate import Accelerator

from losstune.trainables.config import ConfigError
from losstune.trainables.family_api import FamilyError, OptimizerGroup
from losstune.trainables.family_resolve import resolve
from losstune.trainables.engine.loop import run_epoch
from losstune.trainables.engine.step import Run
from losstune.trainables.engine.loop_config import OptimConfig, TrainConfig
from losstune.trainables.engine.optimizer_groups import TrainedGroup, check_groups
from losstune.examples import toy as toy_family


class TwoPlayers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(2.0))
        self.b = torch.nn.Parameter(torch.tensor(3.0))


def loss_terms(model, batch, cfg):
    # "g" depends on both players, "d" on b alone, as a GAN's generator loss runs through the
    # discriminator while the discriminator's own loss sees a detached sample
    return {"g": model.a * model.b, "d": model.b ** 2}, {}


def two_player_family():
    toy = resolve("toy", toy_family, toy_family)
    return dataclasses.replace(toy, name="two_players", loss_terms=loss_terms,
                               term_weights=lambda cfg: {"g": 1.0, "d": 1.0})


def one_step(terms_a: tuple, terms_b: tuple) -> tuple[float, float]:
    model = TwoPlayers()
    groups = [TrainedGroup("a", torch.optim.SGD([model.a], lr=0.1), [model.a], terms_a),
              TrainedGroup("b", torch.optim.SGD([model.b], lr=0.1), [model.b], terms_b)]
    cfg = SimpleNamespace(optim=OptimConfig(grad_clip=0.0), train=TrainConfig())
    stats, step = run_epoch(Run(Accelerator(cpu=True), model, groups, two_player_family(), cfg), [(torch.zeros(1),)], 0)
    assert step == 1 and set(stats["grad_norms"]) == {"grad_norm", "grad_norm/b"}
    return model.a.item(), model.b.item()


def test_each_group_steps_on_the_gradient_of_its_own_terms_only():
    # a = 2, b = 3, SGD lr 0.1. Group a minimises g = ab: d/da = b = 3, a -> 2 - 0.3 = 1.7. Group b
    # minimises d = b^2: d/db = 2b = 6, b -> 3 - 0.6 = 2.4 (had it g's gradient too, a + 2b = 8: 2.2).
    assert one_step(("g",), ("d",)) == pytest.approx((1.7, 2.4))


def test_groups_that_name_no_terms_share_the_whole_loss():
    # g + d: d/da = b = 3, a -> 1.7; d/db = a + 2b = 8, b -> 3 - 0.8 = 2.2
    assert one_step((), ()) == pytest.approx((1.7, 2.2))


def test_a_group_whose_terms_are_absent_this_step_does_not_step():
    # a GAN's discriminator before the adversarial start: only "g" is computed. Group b stays at 3
    # and its AdamW has counted no step (a counted step without a gradient would skew the bias
    # correction of its first real updates); its schedule still follows the run's steps.
    model = TwoPlayers()
    family = dataclasses.replace(two_player_family(), loss_terms=lambda m, batch, cfg: ({"g": m.a * m.b}, {}))
    adam = torch.optim.AdamW([model.b], lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(adam, lambda step: 1.0 / (1 + step))
    groups = [TrainedGroup("a", torch.optim.SGD([model.a], lr=0.1), [model.a], ("g",)),
              TrainedGroup("b", adam, [model.b], ("d",), schedule=schedule)]
    cfg = SimpleNamespace(optim=OptimConfig(grad_clip=0.0), train=TrainConfig())
    run_epoch(Run(Accelerator(cpu=True), model, groups, family, cfg), [(torch.zeros(1),)] * 2, 0)
    assert model.a.item() != 2.0 and model.b.item() == 3.0 and adam.state == {}
    assert adam.param_groups[0]["lr"] == pytest.approx(0.1 / 3)


def declared(model, **first):
    return [OptimizerGroup("a", torch.optim.SGD([model.a], lr=0.1), **first),
            OptimizerGroup("b", torch.optim.SGD([model.b], lr=0.1), terms=("d",))]


def test_overlapping_groups_an_unclipped_first_group_and_sam_across_losses_are_refused():
    family, model = two_player_family(), TwoPlayers()
    cfg = SimpleNamespace(optim=OptimConfig())
    check_groups(family, declared(model, terms=("g",)), cfg)  # the well-formed pair passes
    shared = declared(model) + [OptimizerGroup("again", torch.optim.SGD([model.a], lr=0.1))]
    with pytest.raises(FamilyError, match="group 'again' shares parameters"):
        check_groups(family, shared, cfg)
    with pytest.raises(FamilyError, match="the first group must be the model's, clipped"):
        check_groups(family, declared(model, clipped=False), cfg)
    with pytest.raises(ConfigError, match="optim.sam_rho"):
        check_groups(family, declared(model), SimpleNamespace(optim=OptimConfig(sam_rho=0.05)))
