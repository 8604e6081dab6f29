"""Autoregressive generation, framelet by framelet, over any denoiser with a context cache.

This is the one generation loop of every diffusion renderer in every backend: the torch DiT
(``VelodreamDiT``, a rolling ``KVCache``) and its ncnn export (``src/runtime/ncnn_backend.py``,
a fixed-size cache of explicit tensors) both implement ``CachedDenoiser``, so they draw the same
noise in the same order and render the same frames up to floating-point tolerance. Few-step
distillation (``src/diffusion/distillation.py``) trains through the same ``sample_framelet``,
with gradients, so training and play build the context the same way.

Each framelet is sampled with Euler steps from pure noise. Its context then enters the cache in
one of two ways (``context_from_last_step``, shipped in a package's ``SamplingDefaults``):

* ``False`` (the teacher's way): the result is re-noised to ``context_sigma`` (``add_noise``: the
  noise augmentation the model saw in training) and pushed by a pass of its own, so a long
  rollout does not feed its own small errors back as clean truth: ``steps + 1`` passes.
* ``True`` (a distilled model's way): the keys and values the *last denoising pass* computed
  enter the cache as the framelet's context: no extra pass, ``steps`` passes per framelet. Only a
  model trained with this rollout knows to read that context (its noise level is the last step's).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from src.common.framelets import framelet_count
from src.diffusion.flow_matching import add_noise, euler_sample, randn_like_on


class CachedDenoiser(Protocol):
    def new_cache(self, batch: int, h: int, w: int):
        """An empty context cache for frames of ``h`` x ``w``."""

    def denoise_framelet(self, x_noisy: Tensor, cond: Tensor, sigma: Tensor, cache) -> Tensor:
        """x0 prediction for ``x_noisy`` b f 3 h w at noise ``sigma`` (b,); the cache is read only."""

    def push_context(self, x_ctx_noisy: Tensor, cond: Tensor, sigma_ctx: Tensor, cache) -> None:
        """Append a framelet already noised to ``sigma_ctx`` (b,) to the cache as context."""

    def denoise_framelet_and_push(self, x_noisy: Tensor, cond: Tensor, sigma: Tensor, cache) -> Tensor:
        """``denoise_framelet``, then this pass's keys and values enter the cache as the framelet's
        context (``context_from_last_step``)."""


def sample_framelet(
    model: CachedDenoiser,
    noise: Tensor,
    cond: Tensor,
    cache,
    *,
    sigmas: Tensor,
    context_sigma: float,
    context_from_last_step: bool,
    generator: torch.Generator | None = None,
    grad_step: int | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Sample one framelet (``noise`` b f 3 h w, ``cond`` b f C h w) and put its context in ``cache``.

    Euler steps over ``sigmas`` (``make_sigmas``, ``euler_sample``), then the context (see the module docstring); the
    context noise, when used, is the one random draw here. Returns (the sample, the x0
    prediction of step ``grad_step``). Only the pass of ``grad_step`` records gradients (when
    grad is enabled at all): Self-Forcing's "random exit" trains every step of a few-step model
    while the rollout still runs to the end, as play does.
    """
    num_steps = len(sigmas) - 1
    x0_at_grad_step = None

    def denoise(x: Tensor, sigma: Tensor, step: int) -> Tensor:
        nonlocal x0_at_grad_step
        with torch.set_grad_enabled(torch.is_grad_enabled() and step == grad_step):
            if step == num_steps - 1 and context_from_last_step:
                x0 = model.denoise_framelet_and_push(x, cond, sigma, cache)
            else:
                x0 = model.denoise_framelet(x, cond, sigma, cache)
        if step == grad_step:
            x0_at_grad_step = x0
            x0 = x0.detach()
        return x0

    x = euler_sample(denoise, noise * float(sigmas[0]), sigmas)
    b = noise.shape[0]
    if not context_from_last_step:
        sigma_ctx = torch.full((b,), context_sigma, dtype=x.dtype, device=x.device)
        context_noise = randn_like_on(x.shape, generator=generator, like=x)
        with torch.no_grad():
            model.push_context(add_noise(x, context_noise, sigma_ctx), cond, sigma_ctx, cache)
    return x, x0_at_grad_step


@torch.no_grad()
def rollout_framelets(
    model: CachedDenoiser,
    cond: Tensor,
    *,
    frames_per_framelet: int,
    sigmas: Tensor,
    context_sigma: float = 0.05,
    context_from_last_step: bool = False,
    generator: torch.Generator | None = None,
    cache=None,
) -> Tensor:
    """Generate ``b t 3 h w`` frames for the conditions ``cond`` (``b t C h w``).

    ``sigmas``: the explicit per-framelet schedule (``make_sigmas``); ``context_sigma``: the
    context noise level; ``context_from_last_step``: keep the last denoising pass's keys and
    values as context instead of a context pass. Pass ``cache`` to continue an earlier rollout
    (it is updated). Random draws per framelet, in order: the initial noise, then the context
    noise (none when ``context_from_last_step``).
    """
    b, t, _, h, w = cond.shape
    f = frames_per_framelet
    framelet_count(t, f)
    cache = cache if cache is not None else model.new_cache(b, h, w)
    out = []
    for start in range(0, t, f):
        c = cond[:, start : start + f]
        noise = randn_like_on((b, f, 3, h, w), generator=generator, like=cond)
        x, _ = sample_framelet(
            model,
            noise,
            c,
            cache,
            sigmas=sigmas,
            context_sigma=context_sigma,
            context_from_last_step=context_from_last_step,
            generator=generator,
        )
        out.append(x)
    return torch.cat(out, dim=1)
