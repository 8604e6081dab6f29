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

import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

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
from src.train.critics import CriticOptimisers
from src.train.data import TrainingData
from src.train.ema import EMA
from src.train.host import cpu_step_note, fsdp_asked_but_not_used, fsdp_note, host_threads, mixed_precision
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
from src.train.run_log import flat_hparams, log_record, ranks_record
from src.train.schedule import warmup_steady_cooldown
from src.train.validation import run_validation


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
            mixed_precision=mixed_precision(config),
            gradient_accumulation_steps=config.optim.gradient_accumulation_steps,
            log_with=config.trackers or None,
            project_dir=str(run_dir),
            cpu=config.cpu,
        )
        self.is_main = accelerator.is_main_process
        if self.is_main and fsdp_asked_but_not_used(accelerator):
            print(fsdp_note(accelerator), flush=True)
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
        # the critics the objective trains beside the model (a fake score, a discriminator)
        self.critics = CriticOptimisers(self.objective.critics)
        self.resume = ckpt.latest_checkpoint(run_dir)
        if self.is_main:
            self._prepare_run_dir()
        if config.init_from and self.resume is None:
            load_weights_from(model, config.init_from)
        optimizer, scheduler = self._optimiser(model)
        self.ema = EMA(model, decay=config.optim.ema_decay).to(accelerator.device)
        self.state = TrainState()
        self.model, self.optimizer, self.scheduler = accelerator.prepare(model, optimizer, scheduler)
        self._register_and_resume()
        if config.trackers:
            accelerator.init_trackers(config.run_name, config=flat_hparams(config))
        self.raw_model = accelerator.unwrap_model(self.model)
        self.forward = compile_quietly(self.model) if config.compile else self.model

    def _optimiser(self, model: torch.nn.Module):
        """AdamW over ``model`` and its warmup-steady-cooldown schedule."""
        optim = self.config.optim
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=optim.learning_rate,
            betas=tuple(optim.betas),
            weight_decay=optim.weight_decay,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: warmup_steady_cooldown(
                step,
                max_steps=self.config.max_steps,
                num_warmup_steps=optim.num_warmup_steps,
                num_cooldown_steps=optim.num_cooldown_steps,
                final_fraction=optim.final_lr_fraction,
            ),
        )
        return optimizer, scheduler

    def _register_and_resume(self) -> None:
        """Register every stateful object for checkpointing once, then load the newest readable
        checkpoint where there is one; drop log records written after it."""
        accelerator, run_dir = self.accelerator, self.run_dir
        accelerator.register_for_checkpointing(self.ema, self.state)
        if self.critics:
            accelerator.register_for_checkpointing(self.critics)
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
        log_record(self.run_dir, self.accelerator, record, record["step"])

    def train_step(self, step: int, batches: Iterator[dict]) -> tuple[torch.Tensor, float | None, int, dict]:
        """One optimiser step (with gradient accumulation) on the next batches of ``batches``
        (batch ``step * accumulation + micro``). Returns (loss, grad norm, samples, the
        objective's own numbers of the last micro-batch)."""
        config, accelerator = self.config, self.accelerator
        accumulation = config.optim.gradient_accumulation_steps
        grad_norm = None
        self.critics.set_schedule_step(step)
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
                loss, logs = self.objective(
                    self.forward, batch, generator=generator, critic_step=self.critics.step
                )
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
        if self.accelerator.num_processes == 1:
            return
        self.log(ranks_record(self.accelerator, self.raw_model, self.critics, step))

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
            out_of_time = self._out_of_time(train_seconds >= time_limit)
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
                record = self._train_record(
                    loss, grad_norm, objective_logs, window_samples / max(elapsed, 1e-9)
                )
                progress.set_postfix(loss=f"{record['loss']:.4f}", sps=f"{record['samples_per_s']:.1f}")
                self.log(record)
                window_start, window_samples = time.perf_counter(), 0
            if state.step % config.checkpoint_every_steps == 0 or last:
                self.save_checkpoint(state.step)
            if self.is_main and (state.step % config.validation.every_steps == 0 or last):
                self.validate_and_export(state.step)
            accelerator.wait_for_everyone()
        progress.close()
        return self._finish()

    def _out_of_time(self, this_rank_out_of_time: bool) -> bool:
        """Whether the run stops for ``max_minutes``: every rank stops at the same step, the first
        rank out of time decides."""
        accelerator = self.accelerator
        if self.config.max_minutes is None or accelerator.num_processes == 1:
            return this_rank_out_of_time
        flag = torch.tensor([float(this_rank_out_of_time)], device=accelerator.device)
        return bool(accelerator.reduce(flag, reduction="sum").item() > 0)

    def _train_record(
        self, loss: torch.Tensor, grad_norm, objective_logs: dict, samples_per_s: float
    ) -> dict:
        """The ``train`` log record of the step just taken (the loss averaged over the ranks)."""
        return {
            "step": self.state.step,
            "kind": "train",
            "loss": float(self.accelerator.reduce(loss.detach(), reduction="mean").item()),
            "lr": float(self.scheduler.get_last_lr()[0]),
            "grad_norm": grad_norm,
            "samples_per_s": samples_per_s,
            "samples_seen": self.state.samples_seen,
            **objective_logs,
        }

    def _finish(self) -> Path:
        if self.is_main and not (self.run_dir / "package").is_dir() and self.resume is not None:
            self.validate_and_export(self.state.step)  # a finished run re-run: make sure its package exists
        self.accelerator.end_training()
        if self.is_main:
            release_run_folder(self.lock)
        return self.run_dir


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
