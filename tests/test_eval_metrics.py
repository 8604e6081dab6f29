"""The quality metrics measure what they claim to."""

from __future__ import annotations

import pytest
import torch

from src.conditions.warp import depth_test_mask, forward_backward_mask, warp_error_mask
from src.eval.metrics import psnr, seam_ratio, sliced_wasserstein_distance, ssim, temporal_warp_error


def _real_frames(name: str, *, resolution: str, count: int, fps: float = 2.0) -> torch.Tensor:
    """``count`` frames of an embedded real clip through the project's decoder, ``n 3 h w`` in [0, 1]."""
    from src.common.errors import UserError
    from src.data.decode import DecodeConfig, decode_video
    from src.data.sources import find_embedded_file

    try:
        path = find_embedded_file(name)
    except UserError as error:
        pytest.skip(str(error))
    frames = decode_video(path, DecodeConfig(resolution=resolution, fps=fps, max_frames=count))
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0


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


def test_swd_keeps_a_global_colour_bias_of_the_generated_frames():
    """Descriptors are normalised with the real set's statistics, so a colour cast that each set's
    own normalisation would remove shows up (mostly at the coarsest pyramid level)."""
    frames = _real_frames("vtest.avi", resolution="64x64", count=32)
    generated, real = frames[0::2], frames[1::2]  # different frames of the same street
    cast = (generated + torch.tensor([0.08, 0.0, -0.08])[:, None, None]).clamp(0, 1)
    faithful = sliced_wasserstein_distance(generated, real)
    biased = sliced_wasserstein_distance(cast, real)
    assert biased["mean"] > 2 * faithful["mean"]
    coarsest = max(key for key in faithful if key.startswith("level_"))
    assert biased[coarsest] > 4 * faithful[coarsest]


def test_seam_ratio_finds_a_drawn_grid_and_not_smooth_or_real_frames():
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 96), indexing="ij")
    gradient = torch.stack([xs, ys, (xs + ys) / 2])[None]  # 1 3 64 96
    assert abs(seam_ratio(gradient) - 1.0) < 0.02
    gridded = gradient.clone()
    gridded[..., :, 8::8] += 0.1  # a brighter first column in every 8-px block
    gridded[..., 8::8, :] += 0.1
    assert seam_ratio(gridded) > 5.0
    assert abs(seam_ratio(gridded, grid=6) - 1.0) < abs(seam_ratio(gridded) - 1.0)
    # natural street frames at a training size have no 8-px grid
    for name in ("vtest.avi", "bikes.mp4"):
        real = _real_frames(name, resolution="96x96", count=8)
        assert 0.85 < seam_ratio(real) < 1.15, name


def test_warp_error_mask_leaves_out_an_occluded_region():
    """A square moves 4 px right over a static, textured background: the background it uncovers
    is not in frame t-1, fails the forward-backward check and is left out of the error."""
    background = _smooth_images(1, 5, size=64)[0]
    square = torch.tensor([1.0, 0.0, 0.0])[:, None, None].expand(3, 16, 16)
    previous, current = background.clone(), background.clone()
    previous[:, 24:40, 20:36] = square
    current[:, 24:40, 24:40] = square
    frames = torch.stack([previous, current])
    flow = torch.zeros(2, 64, 64, 2)  # at pixels of t: x_t - x_{t-1}
    flow[1, 24:40, 24:40, 0] = 4.0
    forward = torch.zeros(2, 64, 64, 2)  # at pixels of t-1: where they go
    forward[1, 24:40, 20:36, 0] = 4.0
    mask = warp_error_mask(flow, forward_flow_px=forward, exclude_motion_boundaries=False)
    uncovered = mask[1, 24:40, 20:24]
    assert uncovered.sum() == 0 and mask[1, :, 44:].all() and mask[1, 24:40, 26:38].all()
    unmasked = temporal_warp_error(frames, flow)
    masked = temporal_warp_error(frames, flow, valid_mask=mask)
    assert masked < 1e-4 < unmasked
    assert forward_backward_mask(flow[1:], forward[1:]).shape == (1, 1, 64, 64)
    with_boundaries = warp_error_mask(flow, forward_flow_px=forward)
    assert with_boundaries[1].sum() < mask[1].sum()  # the square's moving edges are left out too


def test_depth_test_mask_leaves_out_background_a_near_object_uncovers():
    """The same scene with depth: a near square (5 m) moves 4 px right over a far wall (20 m). The
    wall it uncovers was hidden behind the square in frame t-1 and fails the depth test; the
    square and the rest of the wall pass."""
    depth = torch.full((2, 64, 64), 20.0)
    depth[0, 24:40, 20:36] = 5.0
    depth[1, 24:40, 24:40] = 5.0
    flow = torch.zeros(2, 64, 64, 2)
    flow[1, 24:40, 24:40, 0] = 4.0
    mask = depth_test_mask(depth, flow)
    assert mask.shape == (2, 64, 64) and mask[0].all()
    assert mask[1, 24:40, 20:24].sum() == 0  # uncovered wall
    assert mask[1, 24:40, 25:40].all() and mask[1, :20].all() and mask[1, :, 44:].all()
    # a static scene seen by a camera that moved forward (everything was farther before) passes
    assert depth_test_mask(torch.stack([depth[1] * 1.2, depth[1]]), torch.zeros(2, 64, 64, 2)).all()
