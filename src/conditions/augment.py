"""Domain-bridging augmentation of encoded conditions, at training time only.

A model trained on conditions extracted from real video must accept the game's conditions, which
are cleaner, blockier and flatter. Each operation below fires with its probability and draws its
strength from its range, once per clip (the same for every frame, so the clip stays coherent):

- every channel: pixelate (downsample + nearest upsample), blur, posterize, noise, clipping;
- flat colour only, "game-style flattening": quantised colour, flattened lighting, luminance
  banding, sharpening.

Input and output: a ``t C h w`` float tensor in [-1, 1] (the output of ``encode``); shapes and the
range are kept, and normals stay unit length.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from src.conditions.spec import ConditionSpec


@dataclasses.dataclass
class AugmentConfig:
    """Probabilities and strength ranges of the training-time condition augmentations."""

    enabled: bool = True
    """apply the augmentations to training clips at all"""
    pixelate_probability: float = 0.2
    """chance per clip of pixelating every channel"""
    pixelate_factor: tuple[float, float] = (1.5, 4.0)
    """(min, max) downsampling factor of the pixelation"""
    blur_probability: float = 0.2
    """chance per clip of a Gaussian blur of every channel"""
    blur_sigma_px: tuple[float, float] = (0.5, 1.5)
    """(min, max) blur sigma in pixels"""
    posterize_probability: float = 0.15
    """chance per clip of posterizing every channel"""
    posterize_levels: tuple[float, float] = (8.0, 32.0)
    """(min, max) levels over [-1, 1] of the posterization"""
    noise_probability: float = 0.3
    """chance per clip of additive Gaussian noise on every channel"""
    noise_std: tuple[float, float] = (0.0, 0.05)
    """(min, max) standard deviation of the noise (encoded units, range [-1, 1])"""
    clip_probability: float = 0.1
    """chance per clip of clipping depth and flow"""
    clip_level: tuple[float, float] = (0.6, 1.0)
    """(min, max) level |x| of depth and flow is clipped to (then rescaled to [-1, 1])"""
    quantize_color_probability: float = 0.4
    """chance per clip of quantising the flat colour (game-style)"""
    quantize_color_levels: tuple[float, float] = (3.0, 10.0)
    """(min, max) levels per colour channel"""
    flatten_lighting_probability: float = 0.3
    """chance per clip of flattening the flat colour's lighting (game-style)"""
    flatten_lighting_strength: tuple[float, float] = (0.3, 1.0)
    """(min, max) share of the smooth shading removed"""
    banding_probability: float = 0.2
    """chance per clip of luminance banding of the flat colour (game-style)"""
    banding_levels: tuple[float, float] = (4.0, 12.0)
    """(min, max) number of luminance bands"""
    sharpen_probability: float = 0.2
    """chance per clip of sharpening the flat colour (game-style)"""
    sharpen_amount: tuple[float, float] = (0.3, 1.0)
    """(min, max) strength of the sharpening"""


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
        return x
