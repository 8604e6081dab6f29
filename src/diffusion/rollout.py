"""Autoregressive generation, framelet by framelet, over any model with a KV cache.

The model only needs ``new_cache(batch, h, w)``, ``denoise_framelet(x, cond, sigma, cache)``
and ``push_context(x_clean, cond, sigma_ctx, cache, generator=...)`` (``VelodreamDiT`` has
them). Each framelet is sampled with Euler steps from pure noise, then pushed into the cache
as context re-noised to ``sigma_ctx`` -- the noise augmentation the model saw in training
-- so that a long rollout does not feed its own small errors back as clean truth.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from src.diffusion.flow_matching import euler_sample


class CachedDenoiser(Protocol):
    def new_cache(self, batch: int, h: int, w: int): ...

    def denoise_framelet(self, x_noisy: Tensor, cond: Tensor, sigma: Tensor, cache) -> Tensor: ...

    def push_context(self, x_ctx: Tensor, cond: Tensor, sigma_ctx, cache, *, generator=None) -> None: ...


@torch.no_grad()
def rollout_framelets(
    model: CachedDenoiser,
    cond: Tensor,
    *,
    frames_per_framelet: int,
    sigmas: Tensor,
    sigma_ctx: float = 0.1,
    generator: torch.Generator | None = None,
    cache=None,
) -> Tensor:
    """Generate ``b t 3 h w`` frames for the conditions ``cond`` (``b t C h w``).

    ``sigmas``: the explicit per-framelet schedule (``make_sigmas``), ``sigma_ctx``: the
    context noise level. Pass ``cache`` to continue an earlier rollout (it is updated).
    """
    b, t, _, h, w = cond.shape
    f = frames_per_framelet
    if t % f:
        raise ValueError(f"{t} frames is not a multiple of {f} frames per framelet")
    cache = cache if cache is not None else model.new_cache(b, h, w)
    out = []
    for start in range(0, t, f):
        c = cond[:, start : start + f]
        noise = torch.randn((b, f, 3, h, w), generator=generator, device=cond.device, dtype=cond.dtype)
        x = euler_sample(
            lambda x_t, sigma, c=c: model.denoise_framelet(x_t, c, sigma, cache),
            noise * sigmas[0],
            sigmas,
        )
        model.push_context(x, c, torch.full((b,), sigma_ctx, dtype=x.dtype), cache, generator=generator)
        out.append(x)
    return torch.cat(out, dim=1)
