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

The joint augmentations of frames and raw channels together live in ``joint_augment.py``.
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
        albedo = self.slices.get("albedo")
        if albedo is not None:  # game-style flattening of the real flat colour
            x[:, :, albedo] = _flatten_colour(x[:, :, albedo].clone(), draws)
        self._degrade(x, draws)
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

    def _degrade(self, x: torch.Tensor, draws: list[ConditionAugmentation]) -> None:
        """Pixelate, blur, posterize, add noise and clip ``x`` (``b t C h w``) in place, each on
        the clips it fires for."""
        picks, factors = _fired(draws, "pixelate_factor", x.device)
        for pick, factor in zip(picks.tolist(), factors):  # each factor its own grid: one clip at a time
            x[pick] = _pixelate(x[pick], factor)
        picks, sigmas = _fired(draws, "blur_sigma_px", x.device)
        if len(picks):
            x[picks] = _gaussian_blur(x[picks], sigmas)
        picks, levels = _fired(draws, "posterize_levels", x.device)
        if len(picks):
            x[picks] = _quantize(x[picks].clamp(-1, 1), _steps(levels, x))
        picks, stds = _fired(draws, "noise_std", x.device)
        for pick, std in zip(picks.tolist(), stds):  # each clip's own noise field, from its own seed
            generator = torch.Generator(device=x.device).manual_seed(draws[pick].noise_seed)
            x[pick] = (
                x[pick] + torch.randn(x.shape[1:], generator=generator, device=x.device, dtype=x.dtype) * std
            )
        picks, levels = _fired(draws, "clip_level", x.device)
        if len(picks):
            level = _per_clip(levels, x)
            for name in ("depth", "flow"):
                if name in self.slices:
                    x[picks, :, self.slices[name]] = (
                        torch.minimum(torch.maximum(x[picks, :, self.slices[name]], -level), level) / level
                    )


def _fired(draws: list[ConditionAugmentation], name: str, device) -> tuple[torch.Tensor, list[float]]:
    """The clips whose draw of ``name`` fired (their indices on ``device``) and their strengths."""
    picks = [i for i, d in enumerate(draws) if getattr(d, name) is not None]
    return torch.tensor(picks, dtype=torch.long, device=device), [getattr(draws[i], name) for i in picks]


def _per_clip(values: list[float], like: torch.Tensor) -> torch.Tensor:
    """One value per clip as ``k 1 1 1 1``, broadcasting over ``t C h w``, in ``like``'s dtype and device."""
    return torch.tensor(values, dtype=like.dtype).to(like.device).view(-1, 1, 1, 1, 1)


def _steps(levels: list[float], like: torch.Tensor) -> torch.Tensor:
    """The quantisation steps of each clip's levels (``_per_clip``)."""
    return _per_clip([max(1.0, level - 1) for level in levels], like)


def _flatten_colour(colour: torch.Tensor, draws: list[ConditionAugmentation]) -> torch.Tensor:
    """Game-style flattening of the flat colour ``b t 3 h w`` (changed in place): flattened
    lighting, luminance banding, quantised colour and sharpening; returned clamped to [-1, 1]."""
    picks, strengths = _fired(draws, "flatten_lighting_strength", colour.device)
    if len(picks):
        c = colour[picks]
        lum = c.mean(dim=2, keepdim=True)
        shading = _gaussian_blur(lum, [max(2.0, c.shape[-1] / 8)] * len(picks))
        colour[picks] = c - _per_clip(strengths, colour) * (
            shading - shading.mean(dim=(-2, -1), keepdim=True)
        )
    picks, levels = _fired(draws, "banding_levels", colour.device)
    if len(picks):
        c = colour[picks]
        lum = c.mean(dim=2, keepdim=True)
        colour[picks] = c + (_quantize(lum.clamp(-1, 1), _steps(levels, colour)) - lum)
    picks, levels = _fired(draws, "quantize_color_levels", colour.device)
    if len(picks):
        colour[picks] = _quantize(colour[picks].clamp(-1, 1), _steps(levels, colour))
    picks, amounts = _fired(draws, "sharpen_amount", colour.device)
    if len(picks):
        c = colour[picks]
        colour[picks] = c + _per_clip(amounts, colour) * (c - _gaussian_blur(c, [1.0] * len(picks)))
    return colour.clamp(-1, 1)
