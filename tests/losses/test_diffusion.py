import math

import pytest
import torch

from losstune.losses.diffusion import (augment_noise, curriculum_range, jitter, make_noise_scheduler, min_snr_weights,
                                       model_timesteps, per_sample_mse, sample_t, snr, squeeze_into, target, x0_estimate)


def rflow(size=32, transform=False, dims=2):
    return make_noise_scheduler("rflow", 1000, dims, base_size=size, timestep_transform=transform)


def test_rflow_follows_the_seeds_convention():
    # t=0 clean, t=1 noise, x_t = (1 - t) x0 + t noise: with x0 = 1, noise = -1 at t = 0.25,
    # x_t = 0.75 * 1 + 0.25 * (-1) = 0.5; the velocity target is x0 - noise = 2
    scheduler = rflow()
    x0, noise = torch.ones(3, 1, 4, 4), -torch.ones(3, 1, 4, 4)
    timesteps = model_timesteps("rflow", torch.tensor([0.0, 0.25, 1.0]), 1000)
    x_t = scheduler.add_noise(x0, noise, timesteps)
    assert torch.allclose(x_t[:, 0, 0, 0], torch.tensor([1.0, 0.5, -1.0]))
    assert torch.equal(target("rflow", x0, noise), 2 * torch.ones_like(x0))


def test_an_euler_step_towards_clean_adds_dt_times_v():
    # from t = 0.5 to t = 0.25 with the exact velocity v = x0 - noise, MONAI's step lands on
    # x_0.25 = 0.75 x0 + 0.25 noise: x_0.5 + 0.25 v = 0.5 x0 + 0.5 n + 0.25 x0 - 0.25 n
    scheduler = rflow()
    scheduler.set_timesteps(num_inference_steps=4)
    x0, noise = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    x_half = 0.5 * x0 + 0.5 * noise
    stepped, _ = scheduler.step(x0 - noise, 500, x_half, next_timestep=250)
    assert torch.allclose(stepped, 0.75 * x0 + 0.25 * noise, atol=1e-6)


@pytest.mark.parametrize("strategy", ["ddpm", "rflow"])
def test_the_one_step_estimate_recovers_x0_from_the_true_prediction(strategy):
    scheduler = make_noise_scheduler(strategy, 1000, 2, base_size=8)
    x0, noise = torch.rand(4, 2, 8, 8), torch.randn(4, 2, 8, 8)
    timesteps = model_timesteps(strategy, torch.tensor([0.05, 0.3, 0.6, 0.9]), 1000)
    x_t = scheduler.add_noise(x0, noise, timesteps)
    estimate = x0_estimate(strategy, scheduler, x_t, target(strategy, x0, noise), timesteps)
    assert torch.allclose(estimate, x0, atol=1e-3)
    assert torch.equal(target("ddpm", x0, noise), noise)


def test_ddpm_draws_every_integer_step_equally_often():
    # 200,000 draws over 1,000 steps: 200 each, binomial sd 14. Drawing k / T and multiplying back
    # truncated some steps to their neighbour: 251, 253, 502, 506 and 511 were never drawn.
    torch.manual_seed(0)
    scheduler = make_noise_scheduler("ddpm", 1000, 2, base_size=8)
    t = sample_t("ddpm", scheduler, torch.zeros(200_000, 1, 1, 1))
    assert 0 < t.min() and t.max() < 1
    counts = torch.bincount(model_timesteps("ddpm", t, 1000), minlength=1000)
    assert len(counts) == 1000 and counts.min() > 130 and counts.max() < 270
    assert all(counts[k] > 130 for k in (251, 253, 502, 506, 511))
    assert abs(t.mean().item() - 0.5) < 0.01 and abs(t.std().item() - 0.2887) < 0.01  # uniform


def test_ddpm_time_to_step_by_hand():
    # the step whose [k / 1000, (k + 1) / 1000) holds t; t = 1 (a jittered time clamped) is the last
    t = torch.tensor([0.0, 0.2515, 0.2519999, 0.252, 0.9995, 1.0])
    assert model_timesteps("ddpm", t, 1000).tolist() == [0, 251, 251, 252, 999, 999]


def test_rflow_times_are_continuous_and_biased_to_the_middle():
    torch.manual_seed(0)
    t = sample_t("rflow", rflow(), torch.zeros(20000, 1, 2, 2))
    assert 0 < t.min() and t.max() < 1 and len(t.unique()) > 19000
    # logit-normal(0, 1): E|t - 0.5| is about 0.19, uniform's is 0.25
    assert (t - 0.5).abs().mean() < 0.21


def test_the_timestep_transform_shifts_larger_images_towards_noise():
    torch.manual_seed(0)
    base = sample_t("rflow", rflow(size=32, transform=True), torch.zeros(5000, 1, 32, 32)).mean()
    torch.manual_seed(0)
    larger = sample_t("rflow", rflow(size=32, transform=True), torch.zeros(5000, 1, 128, 128)).mean()
    assert abs(base - 0.5) < 0.02 and larger > base + 0.2


@pytest.mark.parametrize("epoch, expected", [
    (0, (0.0, 0.3)),  # the seed's start range
    (25, (0.0, 0.65)),  # halfway: 0.3 + 0.5 * (1 - 0.3)
    (50, (0.0, 1.0)),
    (80, (0.0, 1.0)),  # stays at the end range
])
def test_the_curriculum_widens_linearly_over_its_warmup(epoch, expected):
    low, high = curriculum_range(epoch, 50, (0.0, 0.3), (0.0, 1.0))
    assert low == pytest.approx(expected[0]) and high == pytest.approx(expected[1])


def test_squeezing_keeps_times_inside_the_curriculum_range():
    t = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(squeeze_into(t, 0.0, 0.3), torch.tensor([0.0, 0.15, 0.3]))


def test_jitter_moves_times_by_its_std_and_stays_in_range():
    torch.manual_seed(0)
    t = torch.full((20000,), 0.5)
    moved = jitter(t, 0.05)
    assert abs((moved - t).std().item() - 0.05) < 0.002
    assert jitter(torch.tensor([0.0, 1.0]), 0.5).min() >= 0 and jitter(torch.tensor([0.0, 1.0]), 0.5).max() <= 1


def test_noise_augmentation_perturbs_the_noise_but_keeps_its_variance():
    torch.manual_seed(0)
    noise = torch.randn(8, 1, 16, 16)
    augmented = augment_noise(noise, 0.1)
    assert not torch.equal(augmented, noise)
    assert augmented.std().item() == pytest.approx(noise.std().item(), rel=1e-5)
    # the perturbation is small: correlation with the original is 1 / sqrt(1 + 0.1^2) = 0.995
    correlation = torch.corrcoef(torch.stack([noise.flatten(), augmented.flatten()]))[0, 1]
    assert correlation.item() == pytest.approx(1 / math.sqrt(1.01), abs=0.005)


def test_snr_of_both_strategies():
    # rflow: ((1 - t) / t)^2: t = 0.5 -> 1, t = 0.25 -> 9; ddpm: abar / (1 - abar)
    assert torch.allclose(snr("rflow", rflow(), torch.tensor([500.0, 250.0])), torch.tensor([1.0, 9.0]))
    ddpm = make_noise_scheduler("ddpm", 1000, 2, base_size=8)
    abar = ddpm.alphas_cumprod[torch.tensor([10, 900])]
    assert torch.allclose(snr("ddpm", ddpm, torch.tensor([10, 900])), abar / (1 - abar))


def test_min_snr_weights_cap_the_clean_timesteps():
    # min(SNR, 5) / SNR: 0.5 -> 1, 5 -> 1, 50 -> 0.1; SNR 0 (pure noise) -> the limit 1, not 0
    assert torch.allclose(min_snr_weights(torch.tensor([0.0, 0.5, 5.0, 50.0]), 5.0),
                          torch.tensor([1.0, 1.0, 1.0, 0.1]))


def test_min_snr_weight_of_rflows_pure_noise_is_one():
    # RFlow at t = 1 (timestep 1000, where jitter's clamp puts about 0.1% of samples): SNR
    # ((1 - 1) / 1)^2 = 0, weight 1; at t = 0.1: SNR 81, weight 5 / 81 with gamma 5
    scheduler = rflow()
    weights = min_snr_weights(snr("rflow", scheduler, torch.tensor([1000.0, 100.0])), 5.0)
    assert torch.allclose(weights, torch.tensor([1.0, 5.0 / 81.0]))


def test_per_sample_mse_is_float32_and_per_sample():
    # sample 0: all errors 1 -> 1; sample 1: errors (2, 0, 0, 0) -> 4 / 4 = 1; sample 2: 0
    prediction = torch.tensor([[1.0, 1, 1, 1], [2, 0, 0, 0], [0, 0, 0, 0]]).to(torch.bfloat16)
    mse = per_sample_mse(prediction, torch.zeros(3, 4))
    assert mse.dtype == torch.float32 and torch.equal(mse, torch.tensor([1.0, 1.0, 0.0]))


def test_per_sample_mse_over_the_kept_channels_by_hand():
    # sample 0 keeps channel 0 only: its errors there 1 and 3 -> (1 + 9) / 2 = 5; sample 1 keeps
    # both: (1 + 9 + 4 + 0) / 4 = 3.5. Unmasked, sample 0 would be (1 + 9 + 16 + 16) / 4 = 10.5
    prediction = torch.tensor([[[1.0, 3.0], [4.0, 4.0]], [[1.0, 3.0], [2.0, 0.0]]])
    keep = torch.tensor([[[1.0], [0.0]], [[1.0], [1.0]]])
    mse = per_sample_mse(prediction, torch.zeros_like(prediction), keep)
    assert mse.tolist() == [5.0, 3.5]
    assert per_sample_mse(prediction, torch.zeros_like(prediction))[0].item() == 10.5
