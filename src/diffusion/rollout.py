"""Autoregressive generation, framelet by framelet, over any denoiser with a context cache.

This is the one generation loop of every diffusion renderer in every backend: the torch DiT
(``VelodreamDiT``, a rolling ``KVCache``) and its ncnn export (``src/runtime/ncnn_backend.py``,
a fixed-size cache of explicit tensors) both implement ``CachedDenoiser``, so they draw the same
noise in the same order and render the same frames up to floating-point tolerance.

Each framelet is sampled with Euler steps from pure noise, then pushed into the cache as context
re-noised to ``context_sigma`` (``add_noise``: the noise augmentation the model saw in training)
so that a long rollout does not feed its own small errors back as clean truth.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from src.diffusion.flow_matching import add_noise, euler_sample


class CachedDenoiser(Protocol):
    def new_cache(self, batch: int, h: int, w: int):
        """An empty context cache for frames of ``h`` x ``w``."""

    def denoise_framelet(self, x_noisy: Tensor, cond: Tensor, sigma: Tensor, cache) -> Tensor:
        """x0 prediction for ``x_noisy`` b f 3 h w at noise ``sigma`` (b,); the cache is read only."""

    def push_context(self, x_ctx_noisy: Tensor, cond: Tensor, sigma_ctx: Tensor, cache) -> None:
        """Append a framelet already noised to ``sigma_ctx`` (b,) to the cache as context."""


@torch.no_grad()
def rollout_framelets(
    model: CachedDenoiser,
    cond: Tensor,
    *,
    frames_per_framelet: int,
    sigmas: Tensor,
    context_sigma: float = 0.05,
    generator: torch.Generator | None = None,
    cache=None,
) -> Tensor:
    """Generate ``b t 3 h w`` frames for the conditions ``cond`` (``b t C h w``).

    ``sigmas``: the explicit per-framelet schedule (``make_sigmas``); ``context_sigma``: the
    context noise level. Pass ``cache`` to continue an earlier rollout (it is updated).
    Random draws per framelet, in order: the initial noise, then the context noise.
    """
    b, t, _, h, w = cond.shape
    f = frames_per_framelet
    if t % f:
        raise ValueError(f"{t} frames is not a multiple of {f} frames per framelet")
    cache = cache if cache is not None else model.new_cache(b, h, w)
    sigma_ctx = torch.full((b,), context_sigma, dtype=cond.dtype, device=cond.device)
    out = []
    for start in range(0, t, f):
        c = cond[:, start : start + f]
        noise = torch.randn((b, f, 3, h, w), generator=generator, device=cond.device, dtype=cond.dtype)
        x = euler_sample(
            lambda x_t, sigma, c=c: model.denoise_framelet(x_t, c, sigma, cache),
            noise * sigmas[0],
            sigmas,
        )
        context_noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        model.push_context(add_noise(x, context_noise, sigma_ctx), c, sigma_ctx, cache)
        out.append(x)
    return torch.cat(out, dim=1)
