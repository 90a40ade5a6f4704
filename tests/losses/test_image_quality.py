import math

import pytest
import torch

from losses.image_quality import msssim, psnr, regional_errors, regional_sums


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
