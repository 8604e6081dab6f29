"""Joint augmentations keep frames and conditions a true pair.

The flip and the random-scale crop are checked against the project's flow extractor on a real
pan of bikes.mp4 (frames 17-20 at 10 fps, 96x96: a smooth camera pan of 1.6-3.5 px per frame,
no cut): the augmented flow must equal the flow DIS finds between the augmented frames.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from src.common.errors import UserError
from src.conditions.augment import AugmentConfig
from src.conditions.flow import DISFlow, end_point_error
from src.conditions.joint_augment import (
    JointAugmentation,
    apply_joint_augmentation,
    draw_joint_augmentation,
    jitter_colour,
)
from src.conditions.spec import ConditionSpec
from src.data.loader import ClipDataset

PAN_FRAMES = (17, 21)  # frames [17, 21) of bikes.mp4 at 10 fps: a smooth pan


@pytest.fixture(scope="module")
def pan() -> tuple[np.ndarray, np.ndarray]:
    """``t h w 3`` uint8 frames of a real pan and their DIS flow ``t h w 2`` (entry 0 unused)."""
    from src.data.decode import DecodeConfig, decode_video
    from src.data.sources import find_embedded_file

    try:
        path = find_embedded_file("bikes.mp4")
    except UserError as error:
        pytest.skip(str(error))
    frames = decode_video(path, DecodeConfig(resolution="96x96", fps=10.0, max_frames=PAN_FRAMES[1]))
    frames = frames[PAN_FRAMES[0] :]
    return frames, DISFlow().clip(frames)


def _no_degradations(**joint) -> AugmentConfig:
    """Only the named joint augmentations; every domain-bridging degradation off."""
    zeroed = {f.name: 0.0 for f in dataclasses.fields(AugmentConfig) if f.name.endswith("_probability")}
    return AugmentConfig(**(zeroed | joint))


def test_flipped_flow_equals_the_extractors_flow_of_the_flipped_frames(pan):
    """Tolerance: mean end-point error below 0.3 px, i.e. under 10 % of the pan's motion and
    below DIS's own error on real pairs with known flow at this size (0.3-1.0 px in the field
    notes), so it measures the augmentation, not the extractor. Forgetting to negate x (a sign
    bug) misses by more than 3 px."""
    frames, flows = pan
    flipped = apply_joint_augmentation(
        {"frames": frames, "flow": flows}, JointAugmentation(flip=True), out_size=frames.shape[1:3]
    )
    flipped_frames = flipped["frames"].astype(np.uint8)
    assert np.array_equal(flipped_frames, frames[:, :, ::-1])
    errors, sign_bug_errors, motion = [], [], []
    for t in range(1, len(frames)):
        extracted = DISFlow()(flipped_frames[t - 1], flipped_frames[t])
        errors.append(end_point_error(flipped["flow"][t], extracted))
        sign_bug_errors.append(end_point_error(flows[t][:, ::-1], extracted))
        motion.append(np.linalg.norm(extracted, axis=-1).mean())
    assert np.mean(errors) < 0.3 and np.mean(errors) < 0.1 * np.mean(motion)
    assert np.mean(sign_bug_errors) > 3.0


def test_scale_crop_flow_equals_the_extractors_flow_of_the_resized_frames(pan):
    """A 1.5x zoom (the central 64x64 region resized to 96x96): the flow, resized and scaled by
    1.5, matches DIS on the zoomed frames within 0.5 px mean end-point error, and at least twice
    as well as the same flow resized without the scaling."""
    frames, flows = pan
    top, left, size = 16, 16, 64
    region = {
        "frames": frames[:, top : top + size, left : left + size],
        "flow": flows[:, top : top + size, left : left + size],
    }
    zoomed = apply_joint_augmentation(
        region, JointAugmentation(region=(top, left, size, size)), out_size=(96, 96)
    )
    zoomed_frames = zoomed["frames"].round().clip(0, 255).astype(np.uint8)
    errors, unscaled_errors = [], []
    for t in range(1, len(frames)):
        extracted = DISFlow()(zoomed_frames[t - 1], zoomed_frames[t])
        errors.append(end_point_error(zoomed["flow"][t], extracted))
        unscaled_errors.append(end_point_error(zoomed["flow"][t] / 1.5, extracted))
    assert np.mean(errors) < 0.5 and np.mean(errors) < 0.5 * np.mean(unscaled_errors)


def test_flip_in_the_loader_mirrors_frames_and_every_condition_plane(tiny_dataset):
    spec = ConditionSpec()
    kwargs = dict(split="train", clip_frames=2, crop=(24, 32), seed=3, spec=spec)
    plain = ClipDataset(tiny_dataset, augment=_no_degradations(), **kwargs)
    flipping = ClipDataset(tiny_dataset, augment=_no_degradations(flip_probability=1.0), **kwargs)
    slices = spec.slices()
    for index in range(3):
        a, b = plain[index], flipping[index]
        assert torch.equal(b["frames"], a["frames"].flip(-1))  # same clip, same crop, mirrored
        mirrored = a["cond"].flip(-1)
        for name in ("flow", "normals"):
            mirrored[:, slices[name].start] *= -1  # x points the other way
        assert torch.allclose(b["cond"], mirrored, atol=1e-5)


def test_colour_jitter_changes_frames_and_flat_colour_alike(tiny_dataset):
    kwargs = dict(split="train", clip_frames=2, crop=(32, 32), seed=5)
    plain = ClipDataset(tiny_dataset, augment=_no_degradations(), **kwargs)
    jittering = ClipDataset(tiny_dataset, augment=_no_degradations(colour_jitter_probability=1.0), **kwargs)
    albedo = ConditionSpec().slices()["albedo"]
    for index in range(3):
        raw = plain.raw_clip(index)
        jitter = jittering.joint_augmentation(index)
        assert jitter.changes_colour and not jitter.flip and jitter.region is None
        item = jittering[index]
        expected_frames = torch.from_numpy(jitter_colour(raw["frames"], jitter)) / 127.5 - 1
        expected_albedo = torch.from_numpy(jitter_colour(raw["albedo"], jitter)) / 127.5 - 1
        assert torch.allclose(item["frames"], expected_frames.permute(0, 3, 1, 2), atol=1e-5)
        assert torch.allclose(item["cond"][:, albedo], expected_albedo.permute(0, 3, 1, 2), atol=1e-5)
        assert not torch.allclose(item["frames"], plain[index]["frames"], atol=1e-3)
        # everything but the colours is untouched
        assert torch.equal(item["cond"][:, albedo.stop :], plain[index]["cond"][:, albedo.stop :])


def test_colour_jitter_keeps_grey_grey_and_the_identity_is_exact():
    grey = np.full((2, 4, 4, 3), 100, np.uint8)
    rotated = jitter_colour(grey, JointAugmentation(hue_shift_deg=30.0, saturation_factor=0.5))
    assert np.allclose(rotated, 100.0, atol=1e-3)
    colours = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
    assert np.allclose(jitter_colour(colours, JointAugmentation()), colours, atol=1e-3)
    brighter = jitter_colour(colours, JointAugmentation(brightness_factor=1.2))
    assert np.allclose(brighter, np.clip(colours * 1.2, 0, 255), atol=1e-3)


def test_default_config_draws_no_joint_augmentation():
    config = AugmentConfig()
    rng = np.random.default_rng(0)
    for _ in range(20):
        drawn = draw_joint_augmentation(config, rng, frame_hw=(96, 96), crop_size=(64, 64))
        assert drawn.is_identity
    assert rng.random() == np.random.default_rng(0).random()  # nothing was drawn
    scaled = draw_joint_augmentation(
        AugmentConfig(scale_crop_probability=1.0, scale_crop_range=(2.0, 3.0)),
        np.random.default_rng(1),
        frame_hw=(96, 128),
        crop_size=(64, 64),
    )
    top, left, height, width = scaled.region  # limited by the frame: at most 96 px tall
    assert height == width == 96 and top == 0 and 0 <= left <= 32
