"""The generic training loop: accelerate, AdamW, warmup-steady-cooldown, EMA, atomic checkpoints,
resume, logging, validation and package export, written once over a training objective.

The objective (built by ``src/train/objectives.py``, its maths in ``src/diffusion/``) owns everything specific to a way of training --
noise sampling, noising, the loss -- so a distillation or student objective plugs in here
without a copy of the loop. ``train(config)`` is everything ``python -m src.scripts.train_net``
does after parsing.
Re-running the same command resumes from the newest complete checkpoint of
``runs_dir/run_name``: model, EMA, optimiser, scheduler, RNG states and the data position
(the step: batches are a pure function of seed and step) all come back.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from src.common.config import to_dict
from src.common.errors import UserError
from src.common.framelets import framelet_count
from src.common.io import DiskFullError, atomic_write_text, is_full_disk
from src.common.progress import tqdm  # plain lines when the output is not a terminal
from src.diffusion.parallel import all_reduce_gradients
from src.eval.curves import plot_run_curves
from src.net.compiling import compile_quietly
from src.train import checkpoint as ckpt
from src.train.checkpoint import load_newest_readable_state
from src.train.config import TrainConfig
from src.train.data import TrainingData
from src.train.ema import EMA
from src.train.model_io import build_model, load_weights_from
from src.train.objectives import build_objective
from src.train.package import export_package, sampling_defaults, training_command
from src.train.run_folder import (
    claim_run_folder,
    drop_log_records_after,
    lock_run_folder,
    record_run,
    release_run_folder,
)
from src.train.schedule import warmup_steady_cooldown
from src.train.validation import run_validation


def fsdp_asked_but_not_used(accelerator: Accelerator) -> bool:
    """``accelerate launch --use_fsdp`` on a device where accelerate does not shard: on the CPU it
    makes gloo DDP ranks (``--cpu true``), or unconnected single processes, without a word."""
    asked = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true", "yes")
    return asked and accelerator.distributed_type.value != "FSDP"


def _local_numel(parameter: torch.Tensor) -> int:
    """Values of ``parameter`` held by this rank (a DTensor's local shard under FSDP)."""
    return parameter.to_local().numel() if hasattr(parameter, "to_local") else parameter.numel()


class TrainState:
    """The counters a resumed run needs besides the modules (registered for checkpointing)."""

    def __init__(self) -> None:
        self.step = 0
        self.samples_seen = 0

    def state_dict(self) -> dict:
        return {"step": self.step, "samples_seen": self.samples_seen}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.samples_seen = int(state["samples_seen"])


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


def _mixed_precision(config: TrainConfig) -> str:
    if config.mixed_precision == "auto":
        return "bf16" if (torch.cuda.is_available() and not config.cpu) else "no"
    if config.mixed_precision not in ("no", "bf16", "fp16"):
        raise UserError(f"mixed_precision must be auto, no, bf16 or fp16, got '{config.mixed_precision}'")
    return config.mixed_precision


class Trainer:
    """One run: the model, its objective, AdamW, the schedule, EMA and the counters, prepared by
    accelerate and registered for checkpointing once. ``run()`` trains to ``max_steps`` (or until
    ``max_minutes`` of training steps have run)."""

    def __init__(self, config: TrainConfig):
        self.config = config
        threads = host_threads(config, cuda=torch.cuda.is_available())
        if threads:
            torch.set_num_threads(threads)
        self.run_dir = run_dir = Path(config.runs_dir) / config.run_name
        self.accelerator = accelerator = Accelerator(
            mixed_precision=_mixed_precision(config),
            gradient_accumulation_steps=config.optim.gradient_accumulation_steps,
            log_with=config.trackers or None,
            project_dir=str(run_dir),
            cpu=config.cpu,
        )
        self.is_main = accelerator.is_main_process
        if self.is_main and fsdp_asked_but_not_used(accelerator):
            print(
                "note: accelerate was launched with --use_fsdp, but it does not shard on "
                f"{accelerator.device.type} (distributed type {accelerator.distributed_type.value}): "
                "this run trains with every rank holding the whole model "
                "(README: Scaling out)",
                flush=True,
            )
        set_seed(config.seed, device_specific=False)
        self.data = TrainingData(
            config, process_index=accelerator.process_index, num_processes=accelerator.num_processes
        )
        model = build_model(config, self.data)
        framelet_count(
            config.data.clip_frames,
            model.frames_per_step,
            what="data.clip_frames",
            whose="the model's",
            error=UserError,
        )
        self.objective = build_objective(config, model, self.data, accelerator.device)
        self.resume = ckpt.latest_checkpoint(run_dir)
        if self.is_main:
            self._prepare_run_dir()
        if config.init_from and self.resume is None:
            load_weights_from(model, config.init_from)
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=config.optim.learning_rate,
            betas=tuple(config.optim.betas),
            weight_decay=config.optim.weight_decay,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: warmup_steady_cooldown(
                step,
                max_steps=config.max_steps,
                num_warmup_steps=config.optim.num_warmup_steps,
                num_cooldown_steps=config.optim.num_cooldown_steps,
                final_fraction=config.optim.final_lr_fraction,
            ),
        )
        self.ema = EMA(model, decay=config.optim.ema_decay).to(accelerator.device)
        self.state = TrainState()
        self.model, self.optimizer, self.scheduler = accelerator.prepare(model, optimizer, scheduler)
        accelerator.register_for_checkpointing(self.ema, self.state)
        if hasattr(self.objective, "state_dict"):
            accelerator.register_for_checkpointing(self.objective)
        if self.resume is not None:
            self.resume = load_newest_readable_state(accelerator, run_dir, self.is_main)
            if self.is_main:
                print(f"resuming {run_dir} from step {self.state.step}")
        if self.is_main:
            dropped = drop_log_records_after(run_dir, self.state.step)  # logged after the checkpoint
            if dropped:
                print(
                    f"dropped {dropped} record(s) past step {self.state.step} from {run_dir / 'logs.jsonl'}"
                )
        if config.trackers:
            accelerator.init_trackers(config.run_name, config=_flat_hparams(config))
        self.raw_model = accelerator.unwrap_model(self.model)
        self.forward = compile_quietly(self.model) if config.compile else self.model

    def _prepare_run_dir(self) -> None:
        run_dir, config = self.run_dir, self.config
        claim_run_folder(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.lock = lock_run_folder(run_dir)  # before anything in the folder is touched
        ckpt.remove_incomplete(run_dir)
        record_run(run_dir, config)  # refuses a changed model, conditions or dataset size
        # every distinct command that started or resumed this run, in order: the model card quotes
        # them all, so a run extended with other flags is still reproducible from its card
        commands_file = run_dir / "command.txt"
        commands = commands_file.read_text().splitlines() if commands_file.is_file() else []
        if not commands or commands[-1] != training_command():
            atomic_write_text(commands_file, "\n".join([*commands, training_command()]) + "\n")

    def log(self, record: dict) -> None:
        _log(self.run_dir, self.accelerator, record, record["step"])

    def train_step(self, step: int, batches: Iterator[dict]) -> tuple[torch.Tensor, float | None, int, dict]:
        """One optimiser step (with gradient accumulation) on the next batches of ``batches``
        (batch ``step * accumulation + micro``). Returns (loss, grad norm, samples, the
        objective's own numbers of the last micro-batch)."""
        config, accelerator = self.config, self.accelerator
        accumulation = config.optim.gradient_accumulation_steps
        grad_norm = None
        for micro in range(accumulation):
            batch = next(batches)
            batch = {
                "frames": batch["frames"].to(accelerator.device),
                "cond": batch["cond"].to(accelerator.device),
            }
            generator = torch.Generator().manual_seed(
                config.seed * 1_000_003 + step * 131 + micro * 7 + accelerator.process_index
            )
            with accelerator.accumulate(self.model), accelerator.autocast():
                loss, logs = self.objective(self.forward, batch, generator=generator)
                if not math.isfinite(loss.item()):  # before the step: the weights stay as checkpointed
                    raise UserError(
                        f"the loss became {loss.item()} at step {step + 1}; the step was not taken and the "
                        "last checkpoint is unchanged",
                        "Lower --optim.learning_rate, check the data, or resume from the last checkpoint.",
                    )
                accelerator.backward(loss)
                if accelerator.sync_gradients and getattr(
                    self.objective, "model_gradients_need_averaging", False
                ):
                    # the objective ran the model around DDP (cached rollouts): average here instead
                    all_reduce_gradients(self.raw_model)
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(
                        self.model.parameters(), config.optim.max_grad_norm
                    )
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
        samples = batch["frames"].shape[0] * accelerator.num_processes * accumulation
        return loss, (float(grad_norm) if grad_norm is not None else None), samples, logs

    def ema_model(self):
        """A copy of the model holding the EMA weights, in eval mode."""
        model = build_model(self.config, self.data).to(self.accelerator.device)
        model.load_state_dict(self.raw_model.state_dict())
        self.ema.copy_to(model)
        return model.eval()

    def validate_and_export(self, step: int) -> None:
        model = self.ema_model()
        sampling = sampling_defaults(self.config, self.data)
        metrics = {}
        if self.config.validation.enabled:
            metrics = run_validation(model, sampling, self.data, self.config, run_dir=self.run_dir, step=step)
            self.log({"step": step, "kind": "validation", **metrics})
        plot_run_curves(self.run_dir)  # loss, learning rate and every validation metric against step
        export_package(
            model,
            self.data,
            self.config,
            self.run_dir / "package",
            step=step,
            metrics=metrics,
            run_dir=self.run_dir,
        )

    def check_ranks_agree(self, step: int) -> None:
        """Data-parallel ranks must hold identical weights: compare per-tensor sums across ranks."""
        accelerator = self.accelerator
        if accelerator.num_processes == 1:
            return

        def max_difference(tensors: list[torch.Tensor]) -> float:
            # per tensor its sum and its sum of squares, gathered from every rank
            local = torch.stack([s for t in tensors for s in (t.double().sum(), t.double().square().sum())])
            gathered = accelerator.gather(local[None].to(accelerator.device))
            gathered = gathered.reshape(accelerator.num_processes, -1)
            return float((gathered - gathered[0:1]).abs().max())

        parameters = list(self.raw_model.parameters())
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
        if hasattr(self.objective, "state_dict"):
            # the objective's own modules and optimisers (critics, discriminators) must agree too
            state = _state_tensors(self.objective.state_dict())
            if state:
                record["max_objective_state_sum_difference"] = max_difference(state)
        self.log(record)

    def save_checkpoint(self, step: int) -> None:
        self.check_ranks_agree(step)
        staging = ckpt.staging_dir(self.run_dir, step)
        self.accelerator.save_state(str(staging), safe_serialization=True)
        self.accelerator.wait_for_everyone()
        if self.is_main:
            ckpt.finalize_checkpoint(
                self.run_dir,
                step,
                extra={"data_position": step, "samples_seen": self.state.samples_seen},
                keep_last=self.config.keep_last_checkpoints,
            )
        self.accelerator.wait_for_everyone()

    def run(self) -> Path:
        config, state, accelerator = self.config, self.state, self.accelerator
        progress = tqdm(
            total=config.max_steps,
            initial=state.step,
            disable=not self.is_main,
            desc=f"train {config.run_name}",
            dynamic_ncols=True,
        )
        self.model.train()
        window_start, window_samples = time.perf_counter(), 0
        # batches are a pure function of their index: read on from the resume step (in DataLoader
        # workers when data.num_workers > 0)
        batches = self.data.batches(
            state.step * config.optim.gradient_accumulation_steps, device=accelerator.device
        )  # on a GPU the workers only read; encoding and augmentation run there, batched
        first_step = True
        time_limit = config.max_minutes * 60 if config.max_minutes is not None else math.inf
        train_seconds = 0.0  # this command's training steps, for max_minutes
        out_of_time = False
        while state.step < config.max_steps and not out_of_time:
            step_start = time.perf_counter()
            loss, grad_norm, samples, objective_logs = self.train_step(state.step, batches)
            train_seconds += time.perf_counter() - step_start
            out_of_time = train_seconds >= time_limit
            if config.max_minutes is not None and accelerator.num_processes > 1:
                # every rank stops at the same step: the first rank out of time decides
                flag = torch.tensor([float(out_of_time)], device=accelerator.device)
                out_of_time = bool(accelerator.reduce(flag, reduction="sum").item() > 0)
            if first_step and self.is_main and accelerator.device.type == "cpu":
                note = cpu_step_note(time.perf_counter() - step_start, config.max_steps - state.step)
                if note:
                    progress.write(note, file=sys.stderr)
            first_step = False
            self.ema.update(self.raw_model)
            state.step += 1
            state.samples_seen += samples
            window_samples += samples
            progress.update(1)
            last = state.step == config.max_steps or out_of_time
            if state.step % config.log_every_steps == 0 or last:
                elapsed = time.perf_counter() - window_start
                record = {
                    "step": state.step,
                    "kind": "train",
                    "loss": float(accelerator.reduce(loss.detach(), reduction="mean").item()),
                    "lr": float(self.scheduler.get_last_lr()[0]),
                    "grad_norm": grad_norm,
                    "samples_per_s": window_samples / max(elapsed, 1e-9),
                    "samples_seen": state.samples_seen,
                    **objective_logs,
                }
                progress.set_postfix(loss=f"{record['loss']:.4f}", sps=f"{record['samples_per_s']:.1f}")
                self.log(record)
                window_start, window_samples = time.perf_counter(), 0
            if state.step % config.checkpoint_every_steps == 0 or last:
                self.save_checkpoint(state.step)
            if self.is_main and (state.step % config.validation.every_steps == 0 or last):
                self.validate_and_export(state.step)
            accelerator.wait_for_everyone()
        progress.close()
        if self.is_main and not (self.run_dir / "package").is_dir() and self.resume is not None:
            self.validate_and_export(state.step)  # a finished run re-run: make sure its package exists
        accelerator.end_training()
        if self.is_main:
            release_run_folder(self.lock)
        return self.run_dir


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


def train(config: TrainConfig) -> Path:
    """Train (or resume) the run described by ``config``; return the run directory.

    A full disk stops it with one line naming the run folder; the unfinished checkpoint is removed,
    so a later run resumes from the last complete one."""
    run_dir = Path(config.runs_dir) / config.run_name
    try:
        return Trainer(config).run()
    except Exception as error:
        if not is_full_disk(error, run_dir):
            raise
        ckpt.remove_incomplete(run_dir)
        raise DiskFullError(run_dir) from None


def _log(run_dir: Path, accelerator: Accelerator, record: dict, step: int) -> None:
    if not accelerator.is_main_process:
        return
    with open(run_dir / "logs.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")
    numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        accelerator.log(numbers, step=step)


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


def _flat_hparams(config: TrainConfig) -> dict:
    flat: dict = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}{key}.", inner)
        else:
            flat[prefix.rstrip(".")] = value if isinstance(value, (int, float, str, bool)) else str(value)

    walk("", to_dict(config))
    return flat
