"""Data parallelism for the parts of a training step that DDP does not wrap.

The generic loop wraps the trained model in DDP (``accelerator.prepare``), which averages its
gradients during ``backward`` -- but only when the forward pass went through the wrapper. Modules
an objective owns (a fake-score critic, a discriminator) are not wrapped at all, and the
distillation's rollout calls the student's cached methods directly. Averaging their gradients
over the ranks before each optimiser step keeps every rank's copy identical, by construction.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def world_size() -> int:
    """The number of data-parallel processes (1 without torch.distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def all_reduce_gradients(module: nn.Module) -> None:
    """Replace every gradient of ``module`` by its mean over the ranks (a no-op on one process).

    The gradients are flattened into one buffer per dtype, so a model costs one collective, not
    one per tensor. Parameters without a gradient on this rank take part with zeros, so that
    every rank joins the same collectives whatever its batch used."""
    ranks = world_size()
    if ranks == 1:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    by_dtype: dict[torch.dtype, list[nn.Parameter]] = {}
    for param in params:
        by_dtype.setdefault(param.dtype, []).append(param)
    for group in by_dtype.values():
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in group]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= ranks
        offset = 0
        for param in group:
            count = param.numel()
            param.grad = flat[offset : offset + count].view_as(param).clone()
            offset += count
