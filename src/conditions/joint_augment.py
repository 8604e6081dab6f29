"""Joint augmentations: the frames and the raw G-buffer channels changed together, before
``encode``, so that the pair stays a true frame/condition pair (they teach the model what the
conditions mean rather than which scene it is in).

A horizontal mirror (flow x and normals x negated), hue, saturation and brightness jitter applied
alike to the frame and the flat colour, and random-scale crops (everything resized together; flow
in pixels scales with the resize, depth does not). ``draw_joint_augmentation`` draws one clip's
parameters, ``apply_joint_augmentation`` applies them to ``t h w [k]`` arrays,
``flip_and_jitter_batch`` the mirror and the jitter to a batch on its device. All are off by
default (``AugmentConfig``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from src.conditions.config import AugmentConfig


@dataclasses.dataclass
class JointAugmentation:
    """One clip's joint augmentation (drawn once, the same for every frame of the clip)."""

    flip: bool = False
    hue_shift_deg: float = 0.0
    saturation_factor: float = 1.0
    brightness_factor: float = 1.0
    region: tuple[int, int, int, int] | None = None  # top, left, height, width read, then resized

    @property
    def is_identity(self) -> bool:
        return not self.flip and self.region is None and not self.changes_colour

    @property
    def changes_colour(self) -> bool:
        return (self.hue_shift_deg, self.saturation_factor, self.brightness_factor) != (0.0, 1.0, 1.0)


def draw_joint_augmentation(
    config: AugmentConfig,
    rng: np.random.Generator,
    *,
    frame_hw: tuple[int, int],
    crop_size: tuple[int, int],
) -> JointAugmentation:
    """Draw one clip's joint augmentation. ``frame_hw`` and ``crop_size`` are (height, width).

    An operation whose probability is 0 draws nothing from ``rng``.
    """
    out = JointAugmentation()
    if not config.enabled:
        return out

    def fire(probability: float) -> bool:
        return probability > 0 and bool(rng.random() < probability)

    out.flip = fire(config.flip_probability)
    if fire(config.colour_jitter_probability):
        out.hue_shift_deg = float(rng.uniform(*config.hue_shift_deg))
        out.saturation_factor = float(rng.uniform(*config.saturation_factor))
        out.brightness_factor = float(rng.uniform(*config.brightness_factor))
    if fire(config.scale_crop_probability):
        (frame_h, frame_w), (crop_h, crop_w) = frame_hw, crop_size
        low, high = config.scale_crop_range
        scale = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        scale = min(scale, frame_h / crop_h, frame_w / crop_w)  # the region must fit in the frame
        region_h = min(frame_h, max(1, round(crop_h * scale)))
        region_w = min(frame_w, max(1, round(crop_w * scale)))
        top = int(rng.integers(0, frame_h - region_h + 1))
        left = int(rng.integers(0, frame_w - region_w + 1))
        out.region = (top, left, region_h, region_w)
    return out


def colour_jitter_matrix(
    *, hue_shift_deg: float, saturation_factor: float, brightness_factor: float
) -> np.ndarray:
    """The 3x3 matrix ``M`` of a hue rotation, a saturation and a brightness gain: ``rgb' = M rgb``.

    Hue rotates colours about the grey axis (1, 1, 1) (Rodrigues' formula), saturation scales
    the distance from that axis, brightness scales everything; grey stays grey under the first
    two. One linear map per clip, so it acts identically on the frame and on its flat colour.
    """
    angle = math.radians(hue_shift_deg)
    axis = np.full(3, 1 / math.sqrt(3))
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    grey = np.outer(axis, axis)  # projection onto the grey axis
    hue = math.cos(angle) * np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * grey
    saturation = grey + saturation_factor * (np.eye(3) - grey)
    return (brightness_factor * saturation @ hue).astype(np.float32)


def jitter_colour(rgb: np.ndarray, augmentation: JointAugmentation) -> np.ndarray:
    """``... 3`` colours in 0..255 (uint8 or float) -> float32 in [0, 255] after the clip's jitter."""
    matrix = colour_jitter_matrix(
        hue_shift_deg=augmentation.hue_shift_deg,
        saturation_factor=augmentation.saturation_factor,
        brightness_factor=augmentation.brightness_factor,
    )
    return np.clip(rgb.astype(np.float32) @ matrix.T, 0.0, 255.0)


def _resize_planes(planes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``t h w k`` -> ``t H W k`` float32, bilinear with antialiasing when shrinking."""
    x = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32)).permute(0, 3, 1, 2)  # t k h w
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def apply_joint_augmentation(
    channels: dict[str, np.ndarray], augmentation: JointAugmentation, *, out_size: tuple[int, int]
) -> dict[str, np.ndarray]:
    """Apply one clip's joint augmentation to its frames and raw channels.

    ``channels``: ``frames`` and ``albedo`` ``t h w 3`` (0..255), ``depth`` ``t h w``, ``flow``
    ``t h w 2`` (pixels, ``x_t - x_{t-1}``), optionally ``normals`` ``t h w 3`` (x right); each
    read from ``augmentation.region`` when it is set (else already ``out_size``). Returns the
    same keys as float32 arrays of size ``out_size`` (height, width): colours stay on the 0..255
    scale (``encode`` accepts float albedo), flow is scaled by the resize factor of each axis,
    depth is resized but not scaled (it is relative, and encoded scale-free).
    Other keys pass through untouched.
    """
    out = dict(channels)
    if augmentation.is_identity:
        return out
    out_h, out_w = out_size
    for key in ("frames", "albedo", "depth", "flow", "normals"):
        if key not in out:
            continue
        planes = out[key].astype(np.float32)
        planes = planes[..., None] if key == "depth" else planes  # t h w k
        if planes.shape[1:3] != (out_h, out_w):
            in_h, in_w = planes.shape[1:3]
            planes = _resize_planes(planes, (out_h, out_w))
            if key == "flow":
                planes = planes * np.array([out_w / in_w, out_h / in_h], np.float32)
            if key == "normals":
                planes = planes / np.linalg.norm(planes, axis=-1, keepdims=True).clip(1e-6)
        if augmentation.flip:
            planes = planes[:, :, ::-1]
            if key in ("flow", "normals"):  # mirrored motion and surfaces point the other way in x
                planes = planes * np.array([-1.0] + [1.0] * (planes.shape[-1] - 1), np.float32)
        if augmentation.changes_colour and key in ("frames", "albedo"):
            planes = jitter_colour(planes, augmentation)
        planes = planes[..., 0] if key == "depth" else planes
        out[key] = np.ascontiguousarray(planes, dtype=np.float32)
    return out


def flip_and_jitter_batch(
    channels: dict[str, torch.Tensor], augmentations: list[JointAugmentation]
) -> dict[str, torch.Tensor]:
    """The mirror and the colour jitter of ``apply_joint_augmentation`` on a batch, as torch ops on
    the batch's device: ``channels`` hold ``b t h w [k]`` tensors (``frames``/``albedo`` 0..255,
    ``depth``, ``flow`` in pixels, optionally ``normals``), ``augmentations`` one per clip, whose
    regions were already read and resized (``apply_joint_augmentation`` with the region alone).
    Returns float32 tensors; the clips without a mirror or a jitter keep their values exactly."""
    out = {key: value.to(torch.float32, copy=True) for key, value in channels.items()}
    flips = [i for i, a in enumerate(augmentations) if a.flip]
    jitters = [i for i, a in enumerate(augmentations) if a.changes_colour]
    for key in ("frames", "albedo", "depth", "flow", "normals"):
        if key not in out:
            continue
        planes = out[key]
        if flips:
            picks = torch.tensor(flips, device=planes.device)
            mirrored = planes[picks].flip(3)  # b t h w [k]: the width axis
            if key in ("flow", "normals"):  # mirrored motion and surfaces point the other way in x
                mirrored[..., 0] = -mirrored[..., 0]
            planes[picks] = mirrored
        if jitters and key in ("frames", "albedo"):
            picks = torch.tensor(jitters, device=planes.device)
            matrices = torch.from_numpy(
                np.stack(
                    [
                        colour_jitter_matrix(
                            hue_shift_deg=augmentations[i].hue_shift_deg,
                            saturation_factor=augmentations[i].saturation_factor,
                            brightness_factor=augmentations[i].brightness_factor,
                        )
                        for i in jitters
                    ]
                )
            ).to(planes.device)  # k 3 3
            planes[picks] = torch.einsum("kthwc,kdc->kthwd", planes[picks], matrices).clamp(0.0, 255.0)
        out[key] = planes
    return out
