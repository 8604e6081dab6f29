"""The machine a run trains on: torch's CPU threads, the mixed precision, a note for a preset
that needs a GPU run on a CPU, and one for ``--use_fsdp`` where accelerate does not shard."""

from __future__ import annotations

import os

import torch
from accelerate import Accelerator

from src.common.errors import UserError
from src.train.config import TrainConfig

GPU_HOST_THREADS = 4
"""torch's CPU threads when training on a GPU and ``num_threads`` is unset. On a 16-core H200
machine a 224x224 flow-matching step took 382 ms with torch's default (16 threads, beside 4
DataLoader workers) and 140 ms with 4 (144 ms with 1); a distillation step 1086 ms and 770 ms
(README.md, "Training on a GPU")."""


def host_threads(config: TrainConfig, *, cuda: bool) -> int | None:
    """torch's CPU thread count for this run: ``num_threads`` where set; on a GPU (``cuda`` and
    not ``cpu``) at most ``GPU_HOST_THREADS``, since the host only launches kernels and reads
    batches there; None (torch's own choice) on a CPU."""
    if config.num_threads:
        return config.num_threads
    if cuda and not config.cpu:
        return min(GPU_HOST_THREADS, os.cpu_count() or 1)
    return None


def mixed_precision(config: TrainConfig) -> str:
    """accelerate's mixed precision for ``config.mixed_precision`` (auto: bf16 on CUDA, else no)."""
    if config.mixed_precision == "auto":
        return "bf16" if (torch.cuda.is_available() and not config.cpu) else "no"
    if config.mixed_precision not in ("no", "bf16", "fp16"):
        raise UserError(f"mixed_precision must be auto, no, bf16 or fp16, got '{config.mixed_precision}'")
    return config.mixed_precision


def fsdp_asked_but_not_used(accelerator: Accelerator) -> bool:
    """``accelerate launch --use_fsdp`` on a device where accelerate does not shard: on the CPU it
    makes gloo DDP ranks (``--cpu true``), or unconnected single processes, without a word."""
    asked = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true", "yes")
    return asked and accelerator.distributed_type.value != "FSDP"


def fsdp_note(accelerator: Accelerator) -> str:
    """The one line printed when ``fsdp_asked_but_not_used``."""
    return (
        "note: accelerate was launched with --use_fsdp, but it does not shard on "
        f"{accelerator.device.type} (distributed type {accelerator.distributed_type.value}): "
        "this run trains with every rank holding the whole model "
        "(README: Scaling out)"
    )


SLOW_CPU_STEP_S = 2.0  # a first step slower than this on the CPU: a preset made for GPUs


def cpu_step_note(step_s: float, steps_left: int) -> str | None:
    """One line for a run on the CPU whose first step is slow (a GPU preset without a GPU): what a
    step took and what the run would take; None for a step that is fast enough."""
    hours = step_s * steps_left / 3600
    if step_s < SLOW_CPU_STEP_S or hours < 0.5:  # fast steps, or too few of them to matter
        return None
    total = f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"
    return (
        f"note: no GPU: the first step took {step_s:.1f} s on the CPU, so {steps_left:,} steps would take "
        f"about {total}; this preset is made for a GPU (conf/cpu_tiny.yaml, distill_cpu.yaml and "
        "student_cpu.yaml train on a CPU)"
    )
