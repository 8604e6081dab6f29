"""The quality metrics measure what they claim to."""

from __future__ import annotations

import torch

from src.eval.metrics import psnr, sliced_wasserstein_distance, ssim, temporal_warp_error


def _smooth_images(n: int, seed: int, size: int = 48) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 3, size // 4, size // 4, generator=generator)
    return torch.nn.functional.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)


def test_psnr_and_ssim_of_identical_and_noisy_images():
    images = _smooth_images(2, 0)
    assert psnr(images, images) > 100 and abs(ssim(images, images) - 1.0) < 1e-5
    noisy = (images + 0.1 * torch.randn_like(images)).clamp(0, 1)
    assert 15 < psnr(noisy, images) < 25
    assert ssim(noisy, images) < 0.9
    assert ssim(noisy, images) > ssim(torch.rand_like(images), images)


def test_temporal_warp_error_is_zero_for_content_that_moves_with_the_flow():
    frame = _smooth_images(1, 1, size=64)[0]
    shifted = torch.roll(frame, shifts=3, dims=-1)  # content moves 3 px to the right
    frames = torch.stack([frame, shifted])
    flow = torch.zeros(2, 64, 64, 2)
    flow[..., 0] = 3.0  # x_t - x_{t-1} = +3
    assert temporal_warp_error(frames, flow) < 1e-4
    wrong_sign = temporal_warp_error(frames, -flow)
    assert wrong_sign > 0.01


def test_swd_separates_distributions():
    real_a, real_b = _smooth_images(8, 2, 64), _smooth_images(8, 3, 64)
    flat = real_b.mean(dim=(2, 3), keepdim=True).expand_as(real_b).clone()
    same = sliced_wasserstein_distance(real_a, real_b)["mean"]
    different = sliced_wasserstein_distance(real_a, flat)["mean"]
    assert different > 2 * same
