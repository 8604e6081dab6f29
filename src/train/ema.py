"""Exponential moving average of model weights, checkpointed with the rest of the run."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """Keeps ``shadow = decay * shadow + (1 - decay) * param`` for every floating parameter.

    The decay warms up as ``min(decay, (1 + step) / (10 + step))`` so early averages are not
    dominated by the random initialisation. ``state_dict``/``load_state_dict`` let accelerate
    save it beside the model (``accelerator.register_for_checkpointing``).
    """

    def __init__(self, model: nn.Module, *, decay: float = 0.999):
        self.decay = decay
        self.num_updates = 0
        self.shadow = {name: p.detach().clone().float() for name, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        decay = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for name, param in model.named_parameters():
            self.shadow[name].lerp_(param.detach().float(), 1.0 - decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for name, param in model.named_parameters():
            param.copy_(self.shadow[name].to(param.dtype))

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.num_updates = state["num_updates"]
        self.shadow = {name: value.float() for name, value in state["shadow"].items()}

    def to(self, device: torch.device | str) -> EMA:
        self.shadow = {name: value.to(device) for name, value in self.shadow.items()}
        return self
