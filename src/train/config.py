"""The training config: one typed dataclass per subsystem, layered from conf/*.yaml."""

from __future__ import annotations

import dataclasses
from typing import Any

from src.conditions.augment import AugmentConfig
from src.conditions.spec import ConditionSpec


@dataclasses.dataclass
class ModelConfig:
    preset: str = "tiny"
    """a size preset from src.net.presets.DIT_PRESETS: tiny, S, B"""
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    """VelodreamDiT arguments that replace the preset's (e.g. {num_blocks: 4})"""


@dataclasses.dataclass
class DataConfig:
    dataset: str = "data/prepared/default"
    """a prepared dataset folder written by prepare_data"""
    clip_frames: int = 4
    """frames per training clip (a multiple of the model's frames_per_token)"""
    frame_skip: tuple[int, int] = (1, 1)
    """inclusive range of the stride between the frames of a clip"""
    crop: tuple[int, int] | None = None
    """random crop (height, width) of each clip; None trains on whole frames"""
    batch_size: int = 8
    """clips per optimiser step on each process (before gradient accumulation)"""
    num_workers: int = 0
    """DataLoader worker processes that prepare batches ahead of the step (0: on the training thread)"""
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    """domain-bridging degradations applied to the conditions of training clips"""


@dataclasses.dataclass
class OptimConfig:
    learning_rate: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    num_warmup_steps: int = 200
    num_cooldown_steps: int = 0
    """the linear decay to final_lr_fraction over the last steps of max_steps"""
    final_lr_fraction: float = 0.1
    max_grad_norm: float = 1.0
    gradient_accumulation_steps: int = 1
    ema_decay: float = 0.999


@dataclasses.dataclass
class DiffusionConfig:
    sigma_logit_mean: float = 0.0
    sigma_logit_std: float = 1.0
    shift_base_pixels: int = 64 * 64
    """the image size whose time shift is 1; larger frames get sqrt(pixels / this)"""
    loss_weighting: str = "velocity"
    """velocity (the rectified-flow objective for an x-predicting net) or x0"""
    context_noise_max: float = 0.1
    """upper bound of the noise level of the clean context at generation (noise augmentation)"""
    clean_context_probability: float = 0.25
    """chance per clip that earlier framelets get only context noise (teaches generation's setting)"""


@dataclasses.dataclass
class ValidationConfig:
    every_steps: int = 500
    num_real_clips: int = 4
    rollout_frames: int = 16
    num_denoising_steps: int = 2
    context_sigma: float = 0.05
    game_rollout_frames: int = 32
    game_seed: int = 7
    """the seed of the game autopilot ride rendered once per run for validation"""
    enabled: bool = True


@dataclasses.dataclass
class TrainConfig:
    run_name: str = "run"
    """the run folder is runs_dir/run_name; re-running the same command resumes it"""
    runs_dir: str = "runs"
    seed: int = 0
    max_steps: int = 1000
    log_every_steps: int = 10
    checkpoint_every_steps: int = 500
    keep_last_checkpoints: int = 2
    mixed_precision: str = "auto"
    """auto (bf16 on CUDA, fp32 on CPU), no, bf16 or fp16"""
    cpu: bool = False
    """train on the CPU even where a GPU exists"""
    num_threads: int | None = None
    """torch CPU threads (default: torch's own choice)"""
    trackers: list[str] = dataclasses.field(default_factory=list)
    """extra accelerate trackers besides logs.jsonl: tensorboard, wandb"""
    init_from: str | None = None
    """start from the EMA weights of another run folder or renderer package (positions extend)"""
    compile: bool = False
    """torch.compile the model"""
    conditions: ConditionSpec = dataclasses.field(default_factory=ConditionSpec)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    diffusion: DiffusionConfig = dataclasses.field(default_factory=DiffusionConfig)
    validation: ValidationConfig = dataclasses.field(default_factory=ValidationConfig)
