"""Training objectives: each owns its noise sampling, noising and loss, over any denoiser.

An objective is called by the generic loop in ``src/train/loop.py`` once per micro-batch:

    loss, logs = objective(model, batch, generator=generator, critic_step=critic_step)

``model`` is whatever the loop trains (possibly wrapped by DDP or torch.compile), ``batch`` holds
``frames`` b t 3 h w in [-1, 1] and ``cond`` b t C h w on the training device, and ``generator``
(CPU) makes every random draw, so a step's loss is a pure function of the weights, the batch and
the seed. ``logs`` are extra numbers for ``logs.jsonl``. Every objective lists the critics it trains
beside the model (a fake score, a discriminator) in ``critics`` and hands each critic's loss to
``critic_step``, the loop's optimiser step of that critic (``critics.py``); these two have none. ``src/train/objectives.py`` builds each objective
from a run's config (its ``OBJECTIVES`` table).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor

from src.common.framelets import framelet_count
from src.diffusion.config import DiffusionConfig
from src.diffusion.critics import CriticStep
from src.diffusion.flow_matching import (
    FlowMatchingLoss,
    add_noise,
    randn_like_on,
    sample_sigmas_logit_normal,
    time_shift,
)


@dataclasses.dataclass
class FlowMatchingObjective:
    """Flow matching with diffusion forcing and context noise augmentation (the DiT teacher).

    Per framelet ``i`` of a clip of ``n`` framelets:

    * ``sigma_i = time_shift(sigmoid(mean + std * N(0, 1)), shift)`` -- SD3's logit-normal levels
      (eq. 19) moved by the resolution shift; independent per framelet (diffusion forcing);
    * with probability ``clean_context_probability`` per clip, every framelet but the last gets
      only context noise ``U(0, context_noise_max)`` instead: generation sees lightly noised
      clean context (``rollout_framelets``' ``context_sigma``), so training covers that setting;
    * ``x_sigma = (1 - sigma) x0 + sigma eps`` and the ``FlowMatchingLoss`` of the x0 prediction
      (velocity weighting by default: ``|| x0_hat - x0 ||^2 / max(sigma, 0.05)^2``);
    * with ``perceptual_weight > 0``, plus that weight times a perceptual distance (the builder
      gives ST-LPIPS, ``src/eval/lpips.py``) between the x0 prediction and the frame, on the
      frames of framelets with ``sigma <= perceptual_max_sigma`` only: at high noise the x0
      prediction is a conditional mean, blurry by design, and a perceptual term there would ask
      for texture the noisy input does not determine.
    """

    frames_per_framelet: int
    shift: float = 1.0
    config: DiffusionConfig = dataclasses.field(default_factory=DiffusionConfig)
    """the run's ``diffusion`` section: noise levels, context noise, loss weighting, perceptual weight"""
    perceptual: Callable[[Tensor, Tensor], Tensor] | None = None
    perceptual_max_sigma: float = 0.5

    def __post_init__(self) -> None:
        self.loss_fn = FlowMatchingLoss(weighting=self.config.loss_weighting)
        self.perceptual_weight = self.config.perceptual_weight
        if self.perceptual_weight > 0 and self.perceptual is None:
            raise ValueError("perceptual_weight needs a perceptual distance (perceptual=...)")

    def sample_sigmas(self, batch: int, num_framelets: int, *, generator: torch.Generator) -> Tensor:
        """Noise levels ``b n`` for a batch of clips (the recipe above), on the CPU."""
        c = self.config
        sigma = sample_sigmas_logit_normal(
            (batch, num_framelets), mean=c.sigma_logit_mean, std=c.sigma_logit_std, generator=generator
        )
        sigma = time_shift(sigma, self.shift)
        clean_context = torch.rand(batch, generator=generator) < c.clean_context_probability
        context_sigma = torch.rand(batch, num_framelets, generator=generator) * c.context_noise_max
        earlier = torch.arange(num_framelets)[None, :] < (num_framelets - 1)
        return torch.where(clean_context[:, None] & earlier, context_sigma, sigma)

    critics = ()  # it trains no critic: ``critic_step`` is accepted and unused

    def __call__(
        self, model, batch: dict, *, generator: torch.Generator, critic_step: CriticStep | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        frames, cond = batch["frames"], batch["cond"]  # b t 3 h w, b t C h w
        b, t = frames.shape[:2]
        num_framelets = framelet_count(t, self.frames_per_framelet)
        sigma = self.sample_sigmas(b, num_framelets, generator=generator).to(frames.device)
        noise = randn_like_on(frames.shape, generator=generator, like=frames)
        prediction = model(add_noise(frames, noise, sigma), cond, sigma)
        loss = self.loss_fn(prediction.float(), frames, sigma)
        if not self.perceptual_weight:
            return loss, {}
        low_noise = (sigma <= self.perceptual_max_sigma).repeat_interleave(
            self.frames_per_framelet, dim=1
        )  # b t
        if not low_noise.any():
            return loss, {"perceptual": 0.0}
        perceptual = self.perceptual(prediction[low_noise].float(), frames[low_noise])  # k 3 h w
        return loss + self.perceptual_weight * perceptual, {"perceptual": float(perceptual.detach())}


class RegressionObjective:
    """The regression baseline's objective: mean absolute error of a direct net's unclamped
    frames (``model(cond, clamp=False)``) against ``frames``, on the [-1, 1] scale. No noise and
    no randomness: ``generator`` is accepted and unused, as is ``critic_step`` (no critic)."""

    critics = ()

    def __call__(
        self,
        model,
        batch: dict,
        *,
        generator: torch.Generator | None = None,
        critic_step: CriticStep | None = None,
    ) -> tuple[Tensor, dict]:
        return (model(batch["cond"], clamp=False) - batch["frames"]).abs().mean(), {}
