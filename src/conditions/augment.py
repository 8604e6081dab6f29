"""Domain-bridging augmentation of encoded conditions, at training time only.

A model trained on conditions extracted from real video must accept the game's conditions, which
are cleaner, blockier and flatter. Each operation below fires with its probability and draws its
strength from its range, once per clip (the same for every frame, so the clip stays coherent):

- every channel: pixelate (downsample + nearest upsample), blur, posterize, noise, clipping;
- flat colour only, "game-style flattening": quantised colour, flattened lighting, luminance
  banding, sharpening;
- channel dropout: each channel group (albedo, depth, normals, flow) blanked with its
  probability (0; normals facing the camera), never all of them, so no single channel can carry
  everything (off by default).

Input and output: a ``t C h w`` float tensor in [-1, 1] (the output of ``encode``); shapes and the
range are kept, and normals stay unit length.

*Joint* augmentations change the frames and the raw G-buffer channels together, before ``encode``,
so that the pair stays a true frame/condition pair (they teach the model what the conditions mean
rather than which scene it is in): a horizontal mirror (flow x and normals x negated), hue,
saturation and brightness jitter applied alike to the frame and the flat colour, and random-scale
crops (everything resized together; flow in pixels scales with the resize, depth does not).
``draw_joint_augmentation`` draws one clip's parameters, ``apply_joint_augmentation`` applies them
to ``t h w [k]`` arrays. All are off by default.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from src.conditions.config import AugmentConfig  # the settings live apart, free of torch
from src.conditions.spec import ConditionSpec


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``n c h w`` with reflect padding."""
    radius = max(1, math.ceil(2.5 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    n, c, h, w = x.shape
    flat = x.reshape(n * c, 1, h, w)
    pad_x = min(radius, w - 1)
    pad_y = min(radius, h - 1)
    k = kernel[radius - pad_x : radius + pad_x + 1]
    flat = F.conv2d(F.pad(flat, (pad_x, pad_x, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    k = kernel[radius - pad_y : radius + pad_y + 1]
    flat = F.conv2d(F.pad(flat, (0, 0, pad_y, pad_y), mode="reflect"), k.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def _pixelate(x: torch.Tensor, factor: float) -> torch.Tensor:
    h, w = x.shape[-2:]
    small = (max(1, round(h / factor)), max(1, round(w / factor)))
    return F.interpolate(F.interpolate(x, size=small, mode="area"), size=(h, w), mode="nearest")


def _quantize(x: torch.Tensor, levels: float) -> torch.Tensor:
    steps = max(1.0, levels - 1)
    return torch.round((x + 1) * 0.5 * steps) / steps * 2 - 1


class ConditionAugmenter:
    """Applies ``AugmentConfig`` to encoded clips, with an explicit random generator."""

    def __init__(self, config: AugmentConfig, spec: ConditionSpec):
        self.config, self.spec = config, spec
        self.slices = spec.slices()

    def __call__(self, cond: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Augment one clip ``t C h w`` (float, in [-1, 1]); returns a new tensor of the same shape."""
        c = self.config
        if not c.enabled:
            return cond
        x = cond.clone()

        def fire(probability: float) -> bool:
            return bool(rng.random() < probability)

        def draw(bounds: tuple[float, float]) -> float:
            return float(rng.uniform(bounds[0], bounds[1]))

        albedo = self.slices.get("albedo")
        if albedo is not None:  # game-style flattening of the real flat colour
            colour = x[:, albedo]  # t 3 h w
            if fire(c.flatten_lighting_probability):
                strength = draw(c.flatten_lighting_strength)
                lum = colour.mean(dim=1, keepdim=True)
                shading = _gaussian_blur(lum, sigma=max(2.0, colour.shape[-1] / 8))
                colour = colour - strength * (shading - shading.mean(dim=(-2, -1), keepdim=True))
            if fire(c.banding_probability):
                lum = colour.mean(dim=1, keepdim=True)
                colour = colour + (_quantize(lum.clamp(-1, 1), draw(c.banding_levels)) - lum)
            if fire(c.quantize_color_probability):
                colour = _quantize(colour.clamp(-1, 1), draw(c.quantize_color_levels))
            if fire(c.sharpen_probability):
                colour = colour + draw(c.sharpen_amount) * (colour - _gaussian_blur(colour, sigma=1.0))
            x[:, albedo] = colour.clamp(-1, 1)

        if fire(c.pixelate_probability):
            x = _pixelate(x, draw(c.pixelate_factor))
        if fire(c.blur_probability):
            x = _gaussian_blur(x, draw(c.blur_sigma_px))
        if fire(c.posterize_probability):
            x = _quantize(x.clamp(-1, 1), draw(c.posterize_levels))
        if fire(c.noise_probability):
            std = draw(c.noise_std)
            noise = torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32)) * std
            x = x + noise
        if fire(c.clip_probability):
            level = draw(c.clip_level)
            for name in ("depth", "flow"):
                if name in self.slices:
                    x[:, self.slices[name]] = x[:, self.slices[name]].clamp(-level, level) / level
        x = x.clamp(-1, 1)
        normals = self.slices.get("normals")
        if normals is not None:
            n = x[:, normals]
            x[:, normals] = n / n.norm(dim=1, keepdim=True).clamp_min(1e-6)
        if c.channel_dropout_probability > 0:  # drawn last, so the draws above stay as they were
            x = self._drop_channels(x, rng)
        return x

    def _drop_channels(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        names = list(self.slices)
        dropped = [name for name in names if rng.random() < self.config.channel_dropout_probability]
        if len(dropped) == len(names):  # keep one group, chosen at random
            dropped.pop(int(rng.integers(len(dropped))))
        for name in dropped:
            x[:, self.slices[name]] = 0.0
            if name == "normals":  # unit length kept: every normal faces the camera (+z), a blank map
                x[:, self.slices[name].start + 2] = 1.0
        return x


# -- joint augmentations (frames and raw G-buffer channels together, before encode) -------------


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
    frame_size: tuple[int, int],
    crop_size: tuple[int, int],
) -> JointAugmentation:
    """Draw one clip's joint augmentation. ``frame_size`` and ``crop_size`` are (height, width).

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
        (frame_h, frame_w), (crop_h, crop_w) = frame_size, crop_size
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
