"""Autoregressive generation framelet by framelet with the DiT's rolling KV cache (torch).

Each framelet starts from pure noise, is denoised by Euler steps on an explicit sigma schedule,
and is then pushed into the cache as context re-noised to ``context_sigma`` (the noise
augmentation the model was trained with, which keeps long rides from drifting).
"""

from __future__ import annotations

import torch
from torch import Tensor

from src.diffusion.flow_matching import euler_sample, make_sigmas
from src.net.dit import KVCache, VelodreamDiT


class FrameletGenerator:
    """Stateful generator for an endless stream of framelets (play) or a whole clip (validation)."""

    def __init__(
        self,
        model: VelodreamDiT,
        *,
        height: int,
        width: int,
        num_denoising_steps: int = 2,
        shift: float = 1.0,
        context_sigma: float = 0.05,
        seed: int = 0,
        batch: int = 1,
    ):
        self.model = model
        self.height, self.width, self.batch = height, width, batch
        self.sigmas = make_sigmas(num_denoising_steps, shift)
        self.context_sigma = context_sigma
        self.seed = seed
        self.reset()

    @property
    def frames_per_framelet(self) -> int:
        return int(self.model.config.frames_per_token)

    def reset(self) -> None:
        """Forget the context (a new ride)."""
        self.cache: KVCache = self.model.new_cache(self.batch, self.height, self.width)
        self.generator = torch.Generator().manual_seed(self.seed)

    @torch.no_grad()
    def step(self, cond: Tensor) -> Tensor:
        """``cond`` b f C h w (encoded) -> generated framelet b f 3 h w in [-1, 1]."""
        device = next(self.model.parameters()).device
        dtype = next(self.model.parameters()).dtype
        cond = cond.to(device=device, dtype=dtype)
        b, f = cond.shape[:2]
        noise = torch.randn((b, f, 3, self.height, self.width), generator=self.generator).to(device, dtype)
        cache = self.cache

        def denoiser(x: Tensor, sigma: Tensor) -> Tensor:
            return self.model.denoise_framelet(x, cond, sigma, cache)

        frames = euler_sample(denoiser, noise * float(self.sigmas[0]), self.sigmas.to(device)).clamp(-1, 1)
        context_noise = torch.randn(frames.shape, generator=self.generator).to(device, dtype)
        self.model.push_context(frames, cond, self.context_sigma, cache, noise=context_noise)
        return frames


@torch.no_grad()
def generate_clip(
    model: VelodreamDiT,
    cond: Tensor,
    *,
    num_denoising_steps: int = 2,
    shift: float = 1.0,
    context_sigma: float = 0.05,
    seed: int = 0,
) -> Tensor:
    """Generate a whole clip: ``cond`` b t C h w -> frames b t 3 h w in [-1, 1]."""
    b, t, _, h, w = cond.shape
    generator = FrameletGenerator(
        model,
        height=h,
        width=w,
        num_denoising_steps=num_denoising_steps,
        shift=shift,
        context_sigma=context_sigma,
        seed=seed,
        batch=b,
    )
    f = generator.frames_per_framelet
    if t % f:
        raise ValueError(f"{t} frames is not a multiple of the framelet length {f}")
    return torch.cat([generator.step(cond[:, i : i + f]) for i in range(0, t, f)], dim=1)
