"""The critics' optimisers, owned by the training loop (``src/diffusion/critics.py`` says what a
critic is).

``CriticOptimisers`` holds one AdamW per critic and gives the objective ``step(name, loss)``: zero
the critic's gradients, backpropagate its loss, average the gradients over the ranks, clip them
where the critic asks, step. Before each model step the loop sets every critic's learning rate
from its schedule (``set_schedule_step``). Its ``state_dict`` holds the critics' weights and
optimiser states, and is checkpointed with the run like the model's.

A critic takes its updates on every micro-batch's rollout, as its loss needs the rollout of that
micro-batch: under gradient accumulation the model accumulates over the micro-batches and each
critic takes one update per call of ``step``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from src.common.errors import UserError
from src.diffusion.critics import Critic
from src.diffusion.parallel import all_reduce_gradients
from src.train.schedule import linear_warmup


class CriticOptimisers:
    """One AdamW per critic of ``critics``, stepped on the losses the objective hands over."""

    def __init__(self, critics: Sequence[Critic]):
        self.critics = {critic.name: critic for critic in critics}
        self.optimizers = {
            critic.name: torch.optim.AdamW(
                critic.module.parameters(),
                lr=critic.learning_rate,
                betas=tuple(critic.betas),
                weight_decay=critic.weight_decay,
            )
            for critic in critics
        }

    def __bool__(self) -> bool:
        return bool(self.critics)

    def set_schedule_step(self, step: int) -> None:
        """Every critic's learning rate at the model's optimiser step ``step`` (0-based)."""
        for name, critic in self.critics.items():
            factor = linear_warmup(step, critic.warmup_steps)
            for group in self.optimizers[name].param_groups:
                group["lr"] = critic.learning_rate * factor

    def step(self, name: str, loss: Tensor) -> None:
        """One update of critic ``name`` on ``loss``."""
        critic, optimizer = self.critics[name], self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        all_reduce_gradients(critic.module)
        if critic.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(critic.module.parameters(), critic.max_grad_norm)
        optimizer.step()

    # -- checkpointed state: per critic its weights (``name``) and optimiser (``name_optimizer``) --

    def state_dict(self) -> dict:
        state = {}
        for name, critic in self.critics.items():
            state[name] = critic.module.state_dict()
            state[f"{name}_optimizer"] = self.optimizers[name].state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        expected = {key for name in self.critics for key in (name, f"{name}_optimizer")}
        if set(state) != expected:
            raise UserError(
                f"the checkpoint holds critic state {sorted(state)}, this run's critics need {sorted(expected)}",
                "Resume with the objective settings the run was started with, or start a new run "
                "(--init_from the old run's package keeps its weights).",
            )
        for name, critic in self.critics.items():
            critic.module.load_state_dict(state[name])
            self.optimizers[name].load_state_dict(state[f"{name}_optimizer"])
