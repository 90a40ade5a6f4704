import math

import pytest
import torch

from losstune.losses.image_quality import msssim, psnr, regional_errors, regional_sums


@pytest.mark.parametrize("shape", [(2, 1, 16, 16), (2, 2, 32, 32), (2, 1, 64, 64), (1, 1, 256, 256), (1, 1, 32, 32, 32)])
def test_ms_ssim_fits_the_image_size_and_is_one_for_identical_images(shape):
    image = torch.rand(shape)
    assert torch.allclose(msssim(image, image), torch.ones(shape[0]), atol=1e-4)
    assert (msssim((image + 0.2 * torch.randn(shape)).clamp(0, 1), image) < 0.95).all()


def test_psnr_per_sample():
    # error 0.1 everywhere: MSE 0.01, PSNR = 10 log10(1 / 0.01) = 20 dB; error 0.01: 40 dB
    reference = torch.zeros(2, 1, 8, 8)
    estimate = torch.stack([torch.full((1, 8, 8), 0.1), torch.full((1, 8, 8), 0.01)])
    assert torch.allclose(psnr(estimate, reference), torch.tensor([20.0, 40.0]))


def test_regional_errors_are_pixel_weighted():
    # sample 0: tumour 2 pixels with squared error 1 each, 2 background pixels with 0.5;
    # sample 1: no tumour, 4 background pixels with 0.25.
    # tumour: 2 / 2 = 1; background: (1 + 1) / (2 + 4) = 0.3333; ratio 3
    squared = torch.tensor([[[1.0, 1.0, 0.5, 0.5]], [[0.25, 0.25, 0.25, 0.25]]])
    seg = torch.tensor([[[1.0, 1.0, 0.0, 0.0]], [[0.0, 0.0, 0.0, 0.0]]])
    sums = regional_sums(squared, seg)
    out = regional_errors({k: v.mean().item() for k, v in sums.items()})
    assert out["tumor_loss"] == pytest.approx(1.0) and out["background_loss"] == pytest.approx(1 / 3)
    assert out["tumor_bg_ratio"] == pytest.approx(3.0)
    assert math.isnan(regional_errors({**{k: v.mean().item() for k, v in sums.items()}, "tumor_count": 0.0})["tumor_loss"])


def test_slicewise_msssim_is_the_mean_of_each_slices_2d_msssim():
    from losstune.losses.image_quality import slicewise_msssim

    torch.manual_seed(0)
    reference = torch.rand(2, 1, 32, 32, 3)
    estimate = (reference + 0.1 * torch.randn_like(reference)).clamp(0, 1)
    by_slice = torch.stack([msssim(estimate[..., z], reference[..., z]) for z in range(3)]).mean(0)
    assert torch.allclose(slicewise_msssim(estimate, reference), by_slice, atol=1e-6)


def test_per_channel_psnr_by_hand():
    # channel errors 0.1 and 0.3: PSNR 10 log10(1 / 0.01) = 20 and 10 log10(1 / 0.09) = 10.458;
    # MONAI's pooled PSNR of the mean squared error 0.05: 10 log10(20) = 13.010
    from losstune.losses.image_quality import per_channel

    reference = torch.zeros(1, 2, 4, 4)
    estimate = torch.cat([torch.full((1, 1, 4, 4), 0.1), torch.full((1, 1, 4, 4), 0.3)], dim=1)
    values = per_channel(psnr, estimate, reference)
    assert values.shape == (1, 2)
    assert torch.allclose(values, torch.tensor([[20.0, 10 * math.log10(1 / 0.09)]]), atol=1e-4)
    assert float(psnr(estimate, reference)) == pytest.approx(10 * math.log10(20), abs=1e-4)
