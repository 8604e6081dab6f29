"""The training loop: accelerate, AdamW, warmup-steady-cooldown, EMA, atomic checkpoints, resume.

``train(config)`` is everything ``python -m src.scripts.train_net`` does after parsing.
Re-running the same command resumes from the newest complete checkpoint of
``runs_dir/run_name``: model, EMA, optimiser, scheduler, RNG states and the data position
(the step: batches are a pure function of seed and step) all come back.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm import tqdm

from src.common.config import to_dict, to_yaml
from src.common.errors import UserError
from src.common.io import atomic_write_text
from src.diffusion.flow_matching import (
    FlowMatchingLoss,
    add_noise,
    resolution_shift,
    sample_sigmas_logit_normal,
    time_shift,
)
from src.train import checkpoint as ckpt
from src.train.config import TrainConfig
from src.train.data import TrainingData
from src.train.ema import EMA
from src.train.model_io import build_model, load_weights_from
from src.train.package import export_package, training_command
from src.train.schedule import warmup_steady_cooldown


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


def _mixed_precision(config: TrainConfig) -> str:
    if config.mixed_precision == "auto":
        return "bf16" if (torch.cuda.is_available() and not config.cpu) else "no"
    if config.mixed_precision not in ("no", "bf16", "fp16"):
        raise UserError(f"mixed_precision must be auto, no, bf16 or fp16, got '{config.mixed_precision}'")
    return config.mixed_precision


def _check_same_run(run_dir: Path, config: TrainConfig) -> None:
    """Refuse to resume a run whose model or data changed; other settings may change."""
    saved_path = run_dir / "run_config.yaml"
    if not saved_path.is_file():
        return
    import yaml

    saved = yaml.safe_load(saved_path.read_text())
    current = to_dict(config)
    for key in ("model", "conditions"):
        if saved.get(key) != current.get(key):
            raise UserError(
                f"{run_dir} was trained with a different '{key}' section than this command asks for",
                "Resume with the same config, or pick a new --run_name.",
            )


def train(config: TrainConfig) -> Path:
    """Train (or resume) the run described by ``config``; return the run directory."""
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    run_dir = Path(config.runs_dir) / config.run_name
    accelerator = Accelerator(
        mixed_precision=_mixed_precision(config),
        gradient_accumulation_steps=config.optim.gradient_accumulation_steps,
        log_with=config.trackers or None,
        project_dir=str(run_dir),
        cpu=config.cpu,
    )
    is_main = accelerator.is_main_process
    set_seed(config.seed, device_specific=False)

    data = TrainingData(
        config, process_index=accelerator.process_index, num_processes=accelerator.num_processes
    )
    model = build_model(config, data)
    if config.data.clip_frames % model.config.frames_per_token:
        raise UserError(
            f"data.clip_frames ({config.data.clip_frames}) is not a multiple of the model's "
            f"frames_per_token ({model.config.frames_per_token})"
        )
    resume = ckpt.latest_checkpoint(run_dir)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.remove_incomplete(run_dir)
        _check_same_run(run_dir, config)
        atomic_write_text(run_dir / "run_config.yaml", to_yaml(config))
        # every distinct command that started or resumed this run, in order: the model card quotes
        # them all, so a run extended with other flags is still reproducible from its card
        commands_file = run_dir / "command.txt"
        commands = commands_file.read_text().splitlines() if commands_file.is_file() else []
        if not commands or commands[-1] != training_command():
            atomic_write_text(commands_file, "\n".join([*commands, training_command()]) + "\n")
    if config.init_from and resume is None:
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
    ema = EMA(model, decay=config.optim.ema_decay).to(accelerator.device)
    state = TrainState()
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    accelerator.register_for_checkpointing(ema, state)
    if resume is not None:
        accelerator.load_state(str(resume[1]))
        if is_main:
            print(f"resuming {run_dir} from step {state.step}")
    if config.trackers:
        accelerator.init_trackers(config.run_name, config=_flat_hparams(config))

    raw_model = accelerator.unwrap_model(model)
    frames_per_token = raw_model.config.frames_per_token
    height, width = data.frame_size
    shift = resolution_shift(height * width, base_pixels=config.diffusion.shift_base_pixels)
    loss_fn = FlowMatchingLoss(weighting=config.diffusion.loss_weighting)
    forward = torch.compile(model) if config.compile else model

    def validate_and_export(step: int) -> None:
        from src.train.validation import run_validation

        ema_model = build_model(config, data).to(accelerator.device)
        ema_model.load_state_dict(raw_model.state_dict())
        ema.copy_to(ema_model)
        ema_model.eval()
        metrics = {}
        if config.validation.enabled:
            metrics = run_validation(ema_model, data, config, run_dir=run_dir, step=step, shift=shift)
            _log(run_dir, accelerator, {"step": step, "kind": "validation", **metrics}, step)
        export_package(
            ema_model, data, config, run_dir / "package", step=step, metrics=metrics, run_dir=run_dir
        )

    def check_ranks_agree(step: int) -> None:
        """Data-parallel ranks must hold identical weights: compare per-tensor sums across ranks."""
        if accelerator.num_processes == 1:
            return
        sums = torch.stack([p.detach().float().sum() for p in raw_model.parameters()])
        gathered = accelerator.gather(sums[None]).reshape(accelerator.num_processes, -1)
        difference = float((gathered - gathered[0:1]).abs().max())
        _log(
            run_dir,
            accelerator,
            {
                "step": step,
                "kind": "ranks",
                "num_processes": accelerator.num_processes,
                "max_param_sum_difference": difference,
            },
            step,
        )

    def save_checkpoint(step: int) -> None:
        check_ranks_agree(step)
        staging = ckpt.staging_dir(run_dir, step)
        accelerator.save_state(str(staging), safe_serialization=True)
        accelerator.wait_for_everyone()
        if is_main:
            ckpt.finalize_checkpoint(
                run_dir,
                step,
                extra={"data_position": step, "samples_seen": state.samples_seen},
                keep_last=config.keep_last_checkpoints,
            )
        accelerator.wait_for_everyone()

    progress = tqdm(
        total=config.max_steps,
        initial=state.step,
        disable=not is_main,
        desc=f"train {config.run_name}",
        dynamic_ncols=True,
    )
    model.train()
    window_start, window_samples = time.perf_counter(), 0
    batches = data.batches(state.step * config.optim.gradient_accumulation_steps)
    while state.step < config.max_steps:
        step = state.step
        for micro in range(config.optim.gradient_accumulation_steps):
            batch = next(batches)  # train_batch(step * gradient_accumulation_steps + micro)
            frames = batch["frames"].to(accelerator.device)  # b t 3 h w in [-1, 1]
            cond = batch["cond"].to(accelerator.device)  # b t C h w
            b, t = frames.shape[:2]
            n = t // frames_per_token
            generator = torch.Generator().manual_seed(
                config.seed * 1_000_003 + step * 131 + micro * 7 + accelerator.process_index
            )
            sigma = sample_sigmas_logit_normal(
                (b, n),
                mean=config.diffusion.sigma_logit_mean,
                std=config.diffusion.sigma_logit_std,
                generator=generator,
            )
            sigma = time_shift(sigma, shift)
            # Generation sees lightly-noised clean context: train on that setting too.
            clean_context = torch.rand(b, generator=generator) < config.diffusion.clean_context_probability
            context_sigma = torch.rand(b, n, generator=generator) * config.diffusion.context_noise_max
            earlier = torch.arange(n)[None, :] < (n - 1)
            sigma = torch.where(clean_context[:, None] & earlier, context_sigma, sigma).to(accelerator.device)
            noise = torch.randn(frames.shape, generator=generator).to(accelerator.device)
            noisy = add_noise(frames, noise, sigma)
            with accelerator.accumulate(model), accelerator.autocast():
                prediction = forward(noisy, cond, sigma)
                loss = loss_fn(prediction.float(), frames, sigma)
                accelerator.backward(loss)
                grad_norm = None
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.optim.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
        if not math.isfinite(loss.item()):
            raise RuntimeError(
                f"loss became {loss.item()} at step {step}; lower optim.learning_rate or check the data"
            )
        ema.update(raw_model)
        state.step += 1
        samples = b * accelerator.num_processes * config.optim.gradient_accumulation_steps
        state.samples_seen += samples
        window_samples += samples
        progress.update(1)
        if state.step % config.log_every_steps == 0 or state.step == config.max_steps:
            elapsed = time.perf_counter() - window_start
            record = {
                "step": state.step,
                "kind": "train",
                "loss": float(accelerator.reduce(loss.detach(), reduction="mean").item()),
                "lr": float(scheduler.get_last_lr()[0]),
                "grad_norm": float(grad_norm) if grad_norm is not None else None,
                "samples_per_s": window_samples / max(elapsed, 1e-9),
                "samples_seen": state.samples_seen,
            }
            progress.set_postfix(loss=f"{record['loss']:.4f}", sps=f"{record['samples_per_s']:.1f}")
            _log(run_dir, accelerator, record, state.step)
            window_start, window_samples = time.perf_counter(), 0
        last = state.step == config.max_steps
        if state.step % config.checkpoint_every_steps == 0 or last:
            save_checkpoint(state.step)
        if is_main and (state.step % config.validation.every_steps == 0 or last):
            validate_and_export(state.step)
        accelerator.wait_for_everyone()
    progress.close()
    if is_main and not (run_dir / "package").is_dir() and resume is not None:
        validate_and_export(state.step)  # a finished run re-run: make sure its package exists
    accelerator.end_training()
    return run_dir


def _log(run_dir: Path, accelerator: Accelerator, record: dict, step: int) -> None:
    if not accelerator.is_main_process:
        return
    with open(run_dir / "logs.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")
    numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        accelerator.log(numbers, step=step)


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
