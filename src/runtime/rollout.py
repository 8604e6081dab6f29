"""Streaming generation for play: the generic framelet rollout (``src.diffusion.rollout``) with
its cache and random generator kept between calls, so a ride is one endless rollout.
"""

from __future__ import annotations

import torch
from torch import Tensor

from src.diffusion.flow_matching import make_sigmas
from src.diffusion.rollout import rollout_framelets
from src.net.dit import KVCache, VelodreamDiT


class FrameletGenerator:
    """Generates one framelet per ``step`` call, continuing the same ride until ``reset``."""

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
        """``cond`` b f C h w (encoded) -> the generated framelet b f 3 h w, clipped to [-1, 1]."""
        parameter = next(self.model.parameters())
        cond = cond.to(device=parameter.device, dtype=parameter.dtype)
        frames = rollout_framelets(
            self.model, cond, frames_per_framelet=self.frames_per_framelet, sigmas=self.sigmas.to(parameter.device),
            sigma_ctx=self.context_sigma, generator=self.generator, cache=self.cache,
        )
        return frames.clamp(-1, 1)
