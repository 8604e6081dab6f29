"""Optical flow for real video in the game's convention.

The game's flow at pixel ``x_t`` of frame t is ``x_t - x_{t-1}``, in pixels of frame t (x right,
y down). OpenCV's flow from A to B is defined at pixels of A and points to where they go in B, so
we compute the backward flow (current -> previous), which sits at pixels of the current frame and
points to ``x_{t-1} - x_t``, and negate it.
"""

from __future__ import annotations

import cv2
import numpy as np

from src.common.errors import UserError

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class DISFlow:
    """OpenCV's Dense Inverse Search flow (no learned weights)."""

    name = "opencv_dis"

    def __init__(self, preset: str = "medium", finest_scale: int = 0):
        if preset not in DIS_PRESETS:
            raise UserError(f"unknown DIS preset {preset!r}", f"Choose from {', '.join(DIS_PRESETS)}.")
        self.preset = preset
        self.finest_scale = finest_scale
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        # small frames (96x96) need the finest pyramid level, the presets skip it
        self._dis.setFinestScale(finest_scale)

    def settings(self) -> dict:
        return {"name": self.name, "preset": self.preset, "finest_scale": self.finest_scale}

    def __call__(self, previous_rgb: np.ndarray, current_rgb: np.ndarray) -> np.ndarray:
        """``h w 2`` float32 flow ``x_t - x_{t-1}`` at pixels of the current frame."""
        prev = cv2.cvtColor(previous_rgb, cv2.COLOR_RGB2GRAY)
        cur = cv2.cvtColor(current_rgb, cv2.COLOR_RGB2GRAY)
        backward = self._dis.calc(cur, prev, None)  # at x_t: x_{t-1} - x_t
        return -backward.astype(np.float32)

    def clip(self, frames: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
        """Flow for every frame of ``t h w 3`` uint8 frames (``t h w 2``). The first frame uses
        ``previous`` (the frame before the clip) when given, else gets zero flow."""
        out = np.zeros(frames.shape[:3] + (2,), np.float32)
        for i in range(len(frames)):
            before = frames[i - 1] if i > 0 else previous
            if before is not None:
                out[i] = self(before, frames[i])
        return out


def end_point_error(predicted: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean Euclidean distance in pixels between two ``... h w 2`` flows (optionally masked)."""
    error = np.linalg.norm(predicted.astype(np.float64) - truth, axis=-1)
    if mask is not None:
        error = error[mask]
    return float(error.mean())
