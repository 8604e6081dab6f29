"""Stored uint8 frames and model frames in [-1, 1] convert both ways without loss."""

from __future__ import annotations

import numpy as np
import torch

from src.common.frames import frames_from_uint8, frames_to_uint8


def test_uint8_frames_round_trip_exactly_and_land_in_minus_one_to_one():
    stored = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)  # t h w 3
    frames = frames_from_uint8(stored)
    assert frames.shape == (2, 3, 5, 7) and frames.dtype == torch.float32
    assert float(frames.min()) >= -1.0 and float(frames.max()) <= 1.0
    assert np.array_equal(frames_to_uint8(frames), stored)


def test_out_of_range_frames_are_clipped_and_rounded():
    frames = torch.tensor([-3.0, -1.0, 0.0, 0.999, 2.0]).reshape(1, 1, 5).expand(3, 1, 5)  # 3 h=1 w=5
    assert frames_to_uint8(frames)[0, :, 0].tolist() == [0, 0, 128, 255, 255]
