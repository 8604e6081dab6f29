"""The critics an objective trains beside the model: what each is and how it is optimised.

A critic (the distillation's fake score, a discriminator) is a module whose own loss the objective
computes in the middle of its step. The objective lists its critics (``objective.critics``) and
hands each critic loss to ``critic_step(name, loss)``, which the training loop gives it
(``src/train/critics.py: CriticOptimisers``): the loop owns the critics' optimisers, their
learning-rate schedules, gradient clipping, the averaging over ranks and their checkpoints, as it
does for the model's. The objective keeps only the maths: when a critic is stepped and on what.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from torch import Tensor, nn

# critic_step(name, loss): one optimiser step of the named critic on ``loss``
CriticStep = Callable[[str, Tensor], None]

# AdamW's betas for a discriminator: beta1 0 (GAN practice: no momentum chasing a moving target)
GAN_BETAS = (0.0, 0.99)
# and for DMD's fake score (DMD2's critic settings)
FAKE_SCORE_BETAS = (0.0, 0.999)


@dataclasses.dataclass
class Critic:
    """One critic and its optimiser's settings (AdamW): ``learning_rate`` rises linearly over the
    first ``warmup_steps`` of the model's steps, then stays; gradients are clipped to
    ``max_grad_norm`` where it is set."""

    name: str
    module: nn.Module
    learning_rate: float
    betas: tuple[float, float]
    weight_decay: float = 0.0
    max_grad_norm: float | None = None
    warmup_steps: int = 0


def discriminator_critic(
    module: nn.Module, *, learning_rate: float, max_grad_norm: float | None, warmup_steps: int
) -> Critic:
    """A GAN discriminator as a critic named ``discriminator`` (AdamW with ``GAN_BETAS``)."""
    return Critic(
        "discriminator",
        module,
        learning_rate=learning_rate,
        betas=GAN_BETAS,
        max_grad_norm=max_grad_norm,
        warmup_steps=warmup_steps,
    )
