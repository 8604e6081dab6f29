"""What a run writes to ``logs.jsonl`` and its trackers besides the losses: the record writer, the
flattened config the trackers get, and the check that data-parallel ranks hold the same weights."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from accelerate import Accelerator

from src.common.config import to_dict
from src.train.config import TrainConfig


def log_record(run_dir: Path, accelerator: Accelerator, record: dict, step: int) -> None:
    """Append ``record`` to ``logs.jsonl`` and give its numbers to the trackers (main process only)."""
    if not accelerator.is_main_process:
        return
    with open(run_dir / "logs.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")
    numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        accelerator.log(numbers, step=step)


def flat_hparams(config: TrainConfig) -> dict:
    """The config as one level of dotted keys, values the trackers accept (others as strings)."""
    flat: dict = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}{key}.", inner)
        else:
            flat[prefix.rstrip(".")] = value if isinstance(value, (int, float, str, bool)) else str(value)

    walk("", to_dict(config))
    return flat


def _local_numel(parameter: torch.Tensor) -> int:
    """Values of ``parameter`` held by this rank (a DTensor's local shard under FSDP)."""
    return parameter.to_local().numel() if hasattr(parameter, "to_local") else parameter.numel()


def _state_tensors(state) -> list[torch.Tensor]:
    """Every tensor (numbers as tensors) of a nested state dict, in a fixed order."""
    if isinstance(state, dict):
        return [t for key in sorted(state, key=str) for t in _state_tensors(state[key])]
    if isinstance(state, (list, tuple)):
        return [t for value in state for t in _state_tensors(value)]
    if isinstance(state, torch.Tensor):
        return [state.detach()]
    if isinstance(state, (int, float)) and not isinstance(state, bool):
        return [torch.tensor(float(state))]
    return []


def ranks_record(accelerator: Accelerator, model: torch.nn.Module, critics, step: int) -> dict:
    """The ``ranks`` log record: how far apart the ranks' weights are (per-tensor sums compared
    across ranks; data-parallel ranks must hold identical weights). Every rank must call it."""

    def max_difference(tensors: list[torch.Tensor]) -> float:
        # per tensor its sum and its sum of squares, gathered from every rank
        local = torch.stack([s for t in tensors for s in (t.double().sum(), t.double().square().sum())])
        gathered = accelerator.gather(local[None].to(accelerator.device))
        gathered = gathered.reshape(accelerator.num_processes, -1)
        return float((gathered - gathered[0:1]).abs().max())

    parameters = list(model.parameters())
    record = {
        "step": step,
        "kind": "ranks",
        "num_processes": accelerator.num_processes,
        "max_param_sum_difference": max_difference([p.detach() for p in parameters]),
        # the share of the model's values this rank holds: 1 under DDP, ~1/ranks under FSDP
        # (its parameters are DTensors whose local shard is a part of the whole; their sums
        # above are whole-tensor sums, equal on every rank by construction)
        "local_parameter_fraction": sum(_local_numel(p) for p in parameters)
        / sum(p.numel() for p in parameters),
    }
    if critics:
        # the critics the objective trains (a fake score, discriminators) and their optimisers
        # must agree too
        state = _state_tensors(critics.state_dict())
        if state:
            record["max_objective_state_sum_difference"] = max_difference(state)
    return record
