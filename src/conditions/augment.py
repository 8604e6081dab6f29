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


def _blur_matrix(size: int, sigma: float) -> torch.Tensor:
    """The ``size x size`` matrix of a 1-D Gaussian blur with reflect padding: ``M @ v`` blurs ``v``.

    Taps reach ``ceil(2.5 sigma)`` pixels, at most ``size - 1`` (the kernel is cut there, not
    renormalised); a tap past an edge reads the pixel mirrored about it. Blurring a plane is
    ``M_h @ x @ M_w^T``: one matrix product per axis whatever sigma is, where a convolution with
    one input channel costs as many passes as it has taps (141 for the lighting's sigma at 224 px).
    """
    radius = max(1, math.ceil(2.5 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    pad = min(radius, size - 1)
    offsets = torch.arange(-pad, pad + 1)
    rows = torch.arange(size)[:, None].expand(size, offsets.numel())
    columns = rows + offsets
    columns = torch.where(columns < 0, -columns, columns)
    columns = torch.where(columns > size - 1, 2 * (size - 1) - columns, columns)
    weights = kernel[radius - pad : radius + pad + 1].expand(size, -1)
    return torch.zeros(size, size).index_put_((rows, columns), weights, accumulate=True)


def _gaussian_blur(x: torch.Tensor, sigmas: list[float]) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding of ``k ... h w``: item ``i`` with ``sigmas[i]``."""
    h, w = x.shape[-2:]
    rows = torch.stack([_blur_matrix(h, s) for s in sigmas]).to(x.device, x.dtype)  # k h h
    columns = torch.stack([_blur_matrix(w, s) for s in sigmas]).to(x.device, x.dtype)  # k w w
    shape = x.shape
    flat = x.reshape(len(sigmas), -1, h, w)  # k n h w
    flat = torch.einsum("kHh,knhw->knHw", rows, flat)
    flat = torch.einsum("knhw,kWw->knhW", flat, columns)
    return flat.reshape(shape)


def _pixelate(x: torch.Tensor, factor: float) -> torch.Tensor:
    h, w = x.shape[-2:]
    small = (max(1, round(h / factor)), max(1, round(w / factor)))
    return F.interpolate(F.interpolate(x, size=small, mode="area"), size=(h, w), mode="nearest")


def _quantize(x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Round ``x`` in [-1, 1] to ``steps + 1`` evenly spaced values (``steps`` broadcasts against ``x``)."""
    return torch.round((x + 1) * 0.5 * steps) / steps * 2 - 1


@dataclasses.dataclass
class ConditionAugmentation:
    """One clip's draws of the condition augmentations: each operation's strength, or None where it
    does not fire. Drawn on the CPU beside the clip's reading; applied to a whole batch at once
    (``ConditionAugmenter.apply``), on whatever device the batch is."""

    flatten_lighting_strength: float | None = None
    banding_levels: float | None = None
    quantize_color_levels: float | None = None
    sharpen_amount: float | None = None
    pixelate_factor: float | None = None
    blur_sigma_px: float | None = None
    posterize_levels: float | None = None
    noise_std: float | None = None
    noise_seed: int = 0  # seeds the clip's noise field (a torch generator on the batch's device)
    clip_level: float | None = None
    dropped: tuple[str, ...] = ()  # channel groups blanked


class ConditionAugmenter:
    """Applies ``AugmentConfig`` to encoded clips: ``draw`` takes one clip's parameters from an
    explicit random generator, ``apply`` runs them on a batch ``b t C h w`` as batched torch ops."""

    def __init__(self, config: AugmentConfig, spec: ConditionSpec):
        self.config, self.spec = config, spec
        self.slices = spec.slices()

    def __call__(self, cond: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Augment one clip ``t C h w`` (float, in [-1, 1]); returns a new tensor of the same shape."""
        if not self.config.enabled:
            return cond
        return self.apply(cond[None], [self.draw(rng)])[0]

    def draw(self, rng: np.random.Generator) -> ConditionAugmentation:
        """One clip's parameters, in the order the operations run. The noise field itself is not
        drawn here: one integer from ``rng`` seeds it (so a clip costs a few draws, not one per
        value of its noise)."""
        c, out = self.config, ConditionAugmentation()
        if not c.enabled:
            return out

        def fire(probability: float) -> bool:
            return bool(rng.random() < probability)

        def draw(bounds: tuple[float, float]) -> float:
            return float(rng.uniform(bounds[0], bounds[1]))

        if "albedo" in self.slices:  # game-style flattening of the real flat colour
            if fire(c.flatten_lighting_probability):
                out.flatten_lighting_strength = draw(c.flatten_lighting_strength)
            if fire(c.banding_probability):
                out.banding_levels = draw(c.banding_levels)
            if fire(c.quantize_color_probability):
                out.quantize_color_levels = draw(c.quantize_color_levels)
            if fire(c.sharpen_probability):
                out.sharpen_amount = draw(c.sharpen_amount)
        if fire(c.pixelate_probability):
            out.pixelate_factor = draw(c.pixelate_factor)
        if fire(c.blur_probability):
            out.blur_sigma_px = draw(c.blur_sigma_px)
        if fire(c.posterize_probability):
            out.posterize_levels = draw(c.posterize_levels)
        if fire(c.noise_probability):
            out.noise_std = draw(c.noise_std)
            out.noise_seed = int(rng.integers(2**63 - 1))
        if fire(c.clip_probability):
            out.clip_level = draw(c.clip_level)
        if c.channel_dropout_probability > 0:  # drawn last, so the draws above stay as they were
            names = list(self.slices)
            dropped = [name for name in names if rng.random() < c.channel_dropout_probability]
            if len(dropped) == len(names):  # keep one group, chosen at random
                dropped.pop(int(rng.integers(len(dropped))))
            out.dropped = tuple(dropped)
        return out

    def apply(self, cond: torch.Tensor, draws: list[ConditionAugmentation]) -> torch.Tensor:
        """Augment a batch ``b t C h w`` (float, in [-1, 1]) with one draw per clip; returns a new
        tensor. Each operation runs once on the clips it fires for (their strengths broadcast), so
        the cost does not grow with the number of frames in Python, and a GPU batch stays on the GPU."""
        if not self.config.enabled:
            return cond
        x = cond.clone()

        def fired(name: str) -> tuple[torch.Tensor, list[float]]:
            picks = [i for i, d in enumerate(draws) if getattr(d, name) is not None]
            return torch.tensor(picks, dtype=torch.long, device=x.device), [
                getattr(draws[i], name) for i in picks
            ]

        def per_clip(values: list[float]) -> torch.Tensor:  # k 1 1 1 1, broadcasts over t C h w
            return torch.tensor(values, dtype=x.dtype).to(x.device).view(-1, 1, 1, 1, 1)

        def steps(levels: list[float]) -> torch.Tensor:  # quantisation steps of each clip's levels
            return per_clip([max(1.0, level - 1) for level in levels])

        albedo = self.slices.get("albedo")
        if albedo is not None:  # game-style flattening of the real flat colour
            colour = x[:, :, albedo].clone()  # b t 3 h w
            picks, strengths = fired("flatten_lighting_strength")
            if len(picks):
                c = colour[picks]
                lum = c.mean(dim=2, keepdim=True)
                shading = _gaussian_blur(lum, [max(2.0, c.shape[-1] / 8)] * len(picks))
                colour[picks] = c - per_clip(strengths) * (shading - shading.mean(dim=(-2, -1), keepdim=True))
            picks, levels = fired("banding_levels")
            if len(picks):
                c = colour[picks]
                lum = c.mean(dim=2, keepdim=True)
                colour[picks] = c + (_quantize(lum.clamp(-1, 1), steps(levels)) - lum)
            picks, levels = fired("quantize_color_levels")
            if len(picks):
                colour[picks] = _quantize(colour[picks].clamp(-1, 1), steps(levels))
            picks, amounts = fired("sharpen_amount")
            if len(picks):
                c = colour[picks]
                colour[picks] = c + per_clip(amounts) * (c - _gaussian_blur(c, [1.0] * len(picks)))
            x[:, :, albedo] = colour.clamp(-1, 1)

        picks, factors = fired("pixelate_factor")
        for pick, factor in zip(picks.tolist(), factors):  # each factor its own grid: one clip at a time
            x[pick] = _pixelate(x[pick], factor)
        picks, sigmas = fired("blur_sigma_px")
        if len(picks):
            x[picks] = _gaussian_blur(x[picks], sigmas)
        picks, levels = fired("posterize_levels")
        if len(picks):
            x[picks] = _quantize(x[picks].clamp(-1, 1), steps(levels))
        picks, stds = fired("noise_std")
        for pick, std in zip(picks.tolist(), stds):  # each clip's own noise field, from its own seed
            generator = torch.Generator(device=x.device).manual_seed(draws[pick].noise_seed)
            x[pick] = (
                x[pick] + torch.randn(x.shape[1:], generator=generator, device=x.device, dtype=x.dtype) * std
            )
        picks, levels = fired("clip_level")
        if len(picks):
            level = per_clip(levels)
            for name in ("depth", "flow"):
                if name in self.slices:
                    x[picks, :, self.slices[name]] = (
                        torch.minimum(torch.maximum(x[picks, :, self.slices[name]], -level), level) / level
                    )
        x = x.clamp(-1, 1)
        normals = self.slices.get("normals")
        if normals is not None:
            n = x[:, :, normals]  # the length written out: a vector norm over this middle axis is slow
            x[:, :, normals] = n / n.square().sum(dim=2, keepdim=True).sqrt().clamp_min(1e-6)
        for pick, draw in enumerate(draws):  # channel dropout: blank the groups drawn
            for name in draw.dropped:
                x[pick, :, self.slices[name]] = 0.0
                if name == "normals":  # unit length kept: every normal faces the camera (+z), a blank map
                    x[pick, :, self.slices[name].start + 2] = 1.0
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
