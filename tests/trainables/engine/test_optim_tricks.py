import dataclasses
from types import SimpleNamespace

import pytest
import torch
from accelerate import Accelerator

from losstune.trainables.registry import load_family
from losstune.trainables.engine.loop import run_epoch
from losstune.trainables.engine.step import Run
from losstune.trainables.engine.loop_config import OptimConfig, ScheduleConfig, TrainConfig
from losstune.trainables.engine.lr_schedules import make_lr_schedule
from losstune.trainables.engine.optimizer_groups import TrainedGroup
from losstune.trainables.engine.optim_tricks import (GradientNoise, RngSnapshot, add_gradient_noise, gradient_noise_std, make_ema,
                                                     sam_ascent, sam_return)


def parameter(values, grad):
    p = torch.nn.Parameter(torch.tensor(values))
    p.grad = torch.tensor(grad)
    return p


def test_sam_climbs_rho_along_the_normalised_gradient_and_comes_back():
    # g = (3, 4), ||g|| = 5: e = 0.05 * (0.6, 0.8) = (0.03, 0.04)
    p = parameter([1.0, 1.0], [3.0, 4.0])
    steps = sam_ascent([p], rho=0.05, adaptive=False)
    assert torch.allclose(steps[0], torch.tensor([0.03, 0.04]))
    assert torch.allclose(p.data, torch.tensor([1.03, 1.04]))
    sam_return([p], steps)
    assert torch.allclose(p.data, torch.tensor([1.0, 1.0]))


def test_asam_scales_the_step_by_each_weights_size():
    # w = (1, 2), g = (1, 1): || |w| g || = ||(1, 2)|| = sqrt 5; e = 0.05 * w^2 g / sqrt 5
    #   = 0.05 * (1, 4) / 2.2361 = (0.02236, 0.08944)
    p = parameter([1.0, 2.0], [1.0, 1.0])
    steps = sam_ascent([p], rho=0.05, adaptive=True)
    assert torch.allclose(steps[0], torch.tensor([0.02236, 0.08944]), atol=1e-5)


def test_sam_leaves_parameters_without_gradient_alone():
    p, frozen = parameter([1.0], [1.0]), torch.nn.Parameter(torch.tensor([5.0]))
    steps = sam_ascent([p, frozen], 0.1, False)
    assert steps[1] is None and frozen.item() == 5.0


@pytest.mark.parametrize("step, std", [(0, 0.01), (3, 0.01 / 4 ** 0.55), (99, 0.01 / 100 ** 0.55)])
def test_gradient_noise_decays_as_sigma_over_one_plus_step_to_the_decay(step, std):
    # the seed's 0.01 and 0.55: step 3 -> 0.01 / 4^0.55 = 0.004665
    assert gradient_noise_std(0.01, 0.55, step) == pytest.approx(std)


def test_gradient_noise_adds_noise_of_that_std():
    torch.manual_seed(0)
    p = parameter([0.0] * 10000, [1.0] * 10000)
    add_gradient_noise([p], 0.05)
    assert abs((p.grad - 1).std().item() - 0.05) < 0.002 and abs((p.grad - 1).mean().item()) < 0.002


def test_ema_is_frozen_and_averages_with_its_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(model.weight, 1.0)
    ema = make_ema(model, decay=0.9)
    assert not any(p.requires_grad for p in ema.parameters())
    ema.update_parameters(model)  # the first update copies
    torch.nn.init.constant_(model.weight, 2.0)
    ema.update_parameters(model)  # 0.9 * 1 + 0.1 * 2 = 1.1
    assert ema.module.weight.item() == pytest.approx(1.1)


def test_rng_snapshot_replays_the_same_draws():
    snapshot = RngSnapshot(torch.device("cpu"))
    first = torch.randn(5)
    snapshot.restore()
    assert torch.equal(torch.randn(5), first)


class Quadratic(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))


def quadratic_family(noisy: bool):
    """loss = ||w - shift||^2, shift = 0 or a fresh random draw per pass (like diffusion noise)."""
    def loss_terms(model, batch, cfg):
        shift = torch.randn(2) if noisy else torch.zeros(2)
        return {"q": (model.w - shift).pow(2).sum()}, {}
    # hdr_patch's hooks are the contract's defaults (no combine, no per-step state)
    return dataclasses.replace(load_family("hdr_patch"), name="quadratic", loss_terms=loss_terms,
                               term_weights=lambda cfg: {"q": 1.0})


def one_sgd_step(family, rho: float):
    model = Quadratic()
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=0.1)
    cfg = SimpleNamespace(optim=OptimConfig(grad_clip=0.0, sam_rho=rho), train=TrainConfig(), loss=None)
    scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    loader = [(torch.zeros(1),)]
    run_epoch(Run(Accelerator(cpu=True), model, [TrainedGroup("model", optimizer, params, schedule=scheduler)], family, cfg),
              loader, step=0)
    return model.w.detach()


def test_the_loop_steps_with_the_gradient_at_the_perturbed_weights():
    # w = (3, 4), grad 2w = (6, 8), ||.|| = 10; rho 0.5: e = (0.3, 0.4); the gradient at w + e is
    # (6.6, 8.8); SGD lr 0.1 from w: (3 - 0.66, 4 - 0.88) = (2.34, 3.12). Plain: (2.4, 3.2).
    assert torch.allclose(one_sgd_step(quadratic_family(noisy=False), rho=0.5), torch.tensor([2.34, 3.12]))
    assert torch.allclose(one_sgd_step(quadratic_family(noisy=False), rho=0.0), torch.tensor([2.4, 3.2]))


def test_sams_second_pass_sees_the_same_random_draws():
    # with a random shift s per pass, the step is w - 0.1 * 2 (w + e - s) only if both passes
    # draw the same s: recompute it from the same seed
    torch.manual_seed(7)
    stepped = one_sgd_step(quadratic_family(noisy=True), rho=0.5)
    torch.manual_seed(7)
    shift = torch.randn(2)
    w = torch.tensor([3.0, 4.0])
    grad = 2 * (w - shift)
    e = 0.5 * grad / grad.norm()
    assert torch.allclose(stepped, w - 0.1 * 2 * (w + e - shift), atol=1e-6)


def test_warmup_in_epochs_counts_steps_per_epoch():
    # 10 epochs of 10 steps, warmup 5 epochs = 50 steps from 0.1 x lr to lr, then cosine
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cfg = SimpleNamespace(optim=OptimConfig(lr=1.0), train=TrainConfig(epochs=10),
                          schedule=ScheduleConfig(warmup_epochs=5.0, warmup_start_factor=0.1, eta_min_factor=0.01))
    scheduler = make_lr_schedule(optimizer, cfg, total_steps=100)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.1) and rates[50] == pytest.approx(1.0)
    assert rates[25] == pytest.approx(0.55) and rates[49] < 1.0 and rates[-1] < 0.02


def test_gradient_noise_is_the_same_wherever_its_seed_is_and_resumes_from_its_state():
    # Two workers' noise must agree (it is added after the all-reduce), whatever the global RNG did.
    grads = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        p = torch.nn.Parameter(torch.zeros(1000))
        p.grad = torch.zeros(1000)
        GradientNoise(0.01, 0.55, seed=7, device=torch.device("cpu")).add([p], step=3)
        grads.append(p.grad.clone())
    assert torch.equal(grads[0], grads[1])
    assert float(grads[0].std()) == pytest.approx(0.01 / 4 ** 0.55, rel=0.1)  # std at step 3: sigma / 4^0.55
    noise = GradientNoise(0.01, 0.55, seed=7, device=torch.device("cpu"))
    state = noise.state_dict()
    p = torch.nn.Parameter(torch.zeros(10))
    p.grad = torch.zeros(10)
    noise.add([p], step=0)
    first = p.grad.clone()
    resumed = GradientNoise(0.01, 0.55, seed=99, device=torch.device("cpu"))
    resumed.load_state_dict(state)
    p.grad = torch.zeros(10)
    resumed.add([p], step=0)
    assert torch.equal(p.grad, first)
