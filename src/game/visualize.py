"""Turn G-buffer channels into viewable RGB images (numpy only; the data pipeline reuses these).

Every function returns ``h w 3 uint8``.
"""

from __future__ import annotations

import numpy as np

from src.common.gbuffer import SEMANTIC_CLASSES, SKY_DEPTH_M

# a perceptual-ish "turbo"-like ramp: near = warm, far = cool; 9 control points
_DEPTH_RAMP = np.array(
    [
        [0.98, 0.95, 0.55],
        [0.99, 0.75, 0.2],
        [0.95, 0.45, 0.1],
        [0.8, 0.2, 0.2],
        [0.6, 0.1, 0.4],
        [0.4, 0.1, 0.55],
        [0.2, 0.15, 0.55],
        [0.1, 0.1, 0.35],
        [0.03, 0.03, 0.1],
    ]
)

SEMANTIC_PALETTE = np.zeros((256, 3), np.uint8)
for _name, _colour in {
    "sky": (120, 170, 230),
    "road": (80, 80, 90),
    "lane_marking": (250, 250, 250),
    "sidewalk": (230, 170, 120),
    "curb": (200, 120, 60),
    "building": (150, 90, 160),
    "vehicle": (230, 40, 40),
    "pole": (250, 220, 40),
    "tree": (40, 170, 60),
    "bicycle": (40, 220, 220),
    "traffic_light": (250, 130, 0),
    "sign": (220, 220, 0),
    "wire": (255, 0, 255),
    "planter": (120, 90, 40),
}.items():
    SEMANTIC_PALETTE[SEMANTIC_CLASSES[_name]] = _colour


def colorize_depth(
    depth: np.ndarray, *, kind: str = "metric", near_m: float = 1.0, far_m: float = 300.0
) -> np.ndarray:
    """Depth (h w) -> colour: near warm, far dark; metric depth on a log scale, sky black.

    ``kind="inverse_relative"`` (larger = nearer) is normalised by its own range.
    """
    depth = np.asarray(depth, np.float32)
    if kind == "metric":
        clipped = np.clip(depth, near_m, far_m)
        t = np.log(clipped / near_m) / np.log(far_m / near_m)
        sky = depth >= SKY_DEPTH_M * 0.999
    else:
        low, high = float(np.min(depth)), float(np.max(depth))
        t = 1.0 - (depth - low) / max(high - low, 1e-6)
        sky = np.zeros(depth.shape, bool)
    position = t * (len(_DEPTH_RAMP) - 1)
    index = np.clip(np.floor(position).astype(np.int64), 0, len(_DEPTH_RAMP) - 2)
    frac = (position - index)[..., None]
    rgb = _DEPTH_RAMP[index] * (1 - frac) + _DEPTH_RAMP[index + 1] * frac
    rgb[sky] = 0.0
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def colorize_flow(flow: np.ndarray, *, max_magnitude_px: float | None = None) -> np.ndarray:
    """Flow (h w 2, pixels) -> the usual colour wheel: hue = direction, saturation = magnitude.

    ``max_magnitude_px`` fixes the scale (the default is the frame's 99th percentile).
    """
    flow = np.asarray(flow, np.float32)
    dx, dy = flow[..., 0], flow[..., 1]
    magnitude = np.hypot(dx, dy)
    if max_magnitude_px is None:
        max_magnitude_px = float(np.percentile(magnitude, 99)) if magnitude.size else 1.0
    saturation = np.clip(magnitude / max(max_magnitude_px, 1e-3), 0, 1)
    hue = (np.arctan2(-dy, -dx) / np.pi + 1.0) / 2.0  # in [0, 1]
    rgb = _hsv_to_rgb(hue, saturation, np.ones_like(hue))
    return (rgb * 255 + 0.5).astype(np.uint8)


def colorize_normals(normals: np.ndarray) -> np.ndarray:
    """Unit normals (h w 3, components in [-1, 1]) -> rgb = (n + 1) / 2."""
    return (np.clip((np.asarray(normals, np.float32) + 1) * 0.5, 0, 1) * 255 + 0.5).astype(np.uint8)


def colorize_semantic(semantic: np.ndarray) -> np.ndarray:
    """Class ids (h w uint8) -> the fixed palette above."""
    return SEMANTIC_PALETTE[np.asarray(semantic, np.uint8)]


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [
        np.stack([v, t, p], -1),
        np.stack([q, v, p], -1),
        np.stack([p, v, t], -1),
        np.stack([p, q, v], -1),
        np.stack([t, p, v], -1),
        np.stack([v, p, q], -1),
    ]
    out = np.zeros(h.shape + (3,), np.float32)
    for k, choice in enumerate(choices):
        out[i == k] = choice[i == k]
    return out
