"""The training config: one typed dataclass per subsystem, layered from conf/*.yaml."""

from __future__ import annotations

import dataclasses
from typing import Any

from src.conditions.config import AugmentConfig
from src.conditions.spec import ConditionSpec
from src.diffusion.config import DiffusionConfig, DistillConfig, StudentConfig
from src.runtime.defaults import SamplingDefaults


@dataclasses.dataclass
class ModelConfig:
    """The network: its class, a size preset of that class and argument overrides."""

    model_class: str = "VelodreamDiT"
    """VelodreamDiT (the DiT teacher), StudentUNet (the recurrent U-Net student) or RegressionNet
    (the regression baseline)"""
    preset: str = "tiny"
    """a size preset of the class: DIT_PRESETS (tiny, S, B) or STUDENT_PRESETS (tiny, S, M);
    RegressionNet has none (its arguments are the overrides)"""
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    """arguments of the class that replace the preset's (e.g. {num_blocks: 4})"""


@dataclasses.dataclass
class DataConfig:
    """The prepared dataset and how training clips are cut from it."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "clip_frames": "[1, inf)",
        "frame_skip": "[1, inf)",
        "crop": "[1, inf)",
        "batch_size": "[1, inf)",
        "num_workers": "[0, inf)",
    }

    dataset: str = "data/prepared/default"
    """a prepared dataset folder written by prepare_data"""
    prepare_defaults_if_missing: bool = False
    """when dataset has no manifest, prepare the embedded street clips into it first (cpu_tiny)"""
    clip_frames: int = 4
    """frames per training clip (a multiple of the model's frames_per_framelet)"""
    frame_skip: tuple[int, int] = (1, 1)
    """inclusive range of the stride between the frames of a clip"""
    crop: tuple[int, int] | None = None
    """random crop (height, width) of each clip; None trains on whole frames"""
    batch_size: int = 8
    """clips per optimiser step on each process (before gradient accumulation)"""
    num_workers: int = 0
    """DataLoader worker processes that prepare batches ahead of the step (0: on the training thread)"""
    source_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    """per-video sampling weights: {pattern: weight}, the first pattern matching a video's file name,
    stem or id gives its weight (its share of clips, whatever its length; "*" for the rest); empty:
    in proportion to each video's frames (src/data/weights.py)"""
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    """domain-bridging degradations applied to the conditions of training clips"""
    game_level: str | None = None
    """a level file (game/levels/*.yaml) whose world the game clips of the objectives and the
    validation ride are on (None: the default street)"""


@dataclasses.dataclass
class OptimConfig:
    """AdamW, the warmup-steady-cooldown learning rate, gradient clipping and EMA."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "learning_rate": "(0, inf)",
        "weight_decay": "[0, inf)",
        "betas": "[0, 1)",
        "num_warmup_steps": "[0, inf)",
        "num_cooldown_steps": "[0, inf)",
        "final_lr_fraction": "[0, 1]",
        "max_grad_norm": "(0, inf)",
        "gradient_accumulation_steps": "[1, inf)",
        "ema_decay": "[0, 1)",
    }

    learning_rate: float = 3e-4
    """AdamW learning rate after the warmup"""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay"""
    betas: tuple[float, float] = (0.9, 0.99)
    """AdamW (beta1, beta2)"""
    num_warmup_steps: int = 200
    """linear warmup of the learning rate from 0 over the first steps"""
    num_cooldown_steps: int = 0
    """the linear decay to final_lr_fraction over the last steps of max_steps"""
    final_lr_fraction: float = 0.1
    """the learning rate at the end of the cooldown, as a fraction of learning_rate"""
    max_grad_norm: float = 1.0
    """gradients are clipped to this global norm"""
    gradient_accumulation_steps: int = 1
    """micro-batches per optimiser step"""
    ema_decay: float = 0.999
    """decay of the exponential moving average of the weights (the exported model)"""


@dataclasses.dataclass
class ValidationConfig:
    """Validation rollouts of the EMA model on held-out real clips and a game ride."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "every_steps": "[1, inf)",
        "num_real_clips": "[0, inf)",
        "rollout_frames": "[1, inf)",
        "num_denoising_steps": "[1, inf)",
        "context_sigma": "[0, 1]",
        "game_rollout_frames": "[0, inf)",
        "game_seed": "[0, inf)",
    }

    every_steps: int = 500
    """validate and export the package every this many steps (and at the last step)"""
    num_real_clips: int = 4
    """held-out real clips generated at each validation"""
    rollout_frames: int = 16
    """frames per generated validation rollout"""
    num_denoising_steps: int | None = None
    """moved to sampling.num_denoising_steps; a value here is still read into it (old configs)"""
    context_sigma: float | None = None
    """moved to sampling.context_sigma; a value here is still read into it (old configs)"""
    context_from_last_step: bool | None = None
    """moved to sampling.context_from_last_step; a value here is still read into it (old configs)"""
    game_rollout_frames: int = 32
    """frames of the game autopilot ride generated at each validation"""
    game_seed: int = 7
    """the seed of the game autopilot ride rendered once per run for validation"""
    enabled: bool = True
    """run validation at all (the package is exported either way)"""
    feature_metrics: bool = False
    """also KID on the standard Inception features and ST-LPIPS (evaluate's keys; about 0.5 s per
    frame on a CPU core, so off by default; grid peaks are always measured)"""


@dataclasses.dataclass
class TrainConfig:
    """``train_net``: one training run (re-running the same command resumes it)."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "seed": "[0, inf)",
        "max_steps": "[1, inf)",
        "max_minutes": "(0, inf)",
        "log_every_steps": "[1, inf)",
        "checkpoint_every_steps": "[1, inf)",
        "keep_last_checkpoints": "[1, inf)",
        "num_threads": "[1, inf)",
    }
    CHOICES = {"mixed_precision": ("auto", "no", "bf16", "fp16")}  # checked when parsed

    run_name: str = "run"
    """the run folder is runs_dir/run_name; re-running the same command resumes it"""
    runs_dir: str = "runs"
    """the folder that holds the run folders"""
    seed: int = 0
    """seed of the model init, the data order and the noise (batches are a function of seed and step)"""
    max_steps: int = 1000
    """optimiser steps to train for (re-running with more steps extends the run)"""
    max_minutes: float | None = None
    """also stop once this many minutes of training steps (this command's, not start-up,
    checkpoints or validation) have run: the run then ends at that step, checkpointed and
    exported (None = no time limit)"""
    log_every_steps: int = 10
    """write a train record to logs.jsonl every this many steps"""
    checkpoint_every_steps: int = 500
    """save a resumable checkpoint every this many steps (and at the last step)"""
    keep_last_checkpoints: int = 2
    """how many of the newest checkpoints to keep"""
    mixed_precision: str = "auto"
    """auto (bf16 on CUDA, fp32 on CPU), no, bf16 or fp16"""
    cpu: bool = False
    """train on the CPU even where a GPU exists"""
    num_threads: int | None = None
    """torch CPU threads (default: torch's own choice on a CPU, 4 on a GPU, where more only
    contend with the data workers: src/train/host.py GPU_HOST_THREADS)"""
    trackers: list[str] = dataclasses.field(default_factory=list)
    """extra accelerate trackers besides logs.jsonl: tensorboard, wandb"""
    init_from: str | None = None
    """start from the EMA weights of another run folder or renderer package (positions extend)"""
    compile: bool = False
    """torch.compile the model"""
    objective: str = "flow_matching"
    """the training objective (src/train/objectives.py OBJECTIVES): flow_matching trains the DiT teacher,
    student the recurrent U-Net student (model.model_class: StudentUNet) from a teacher, regression
    the regression baseline (model.model_class: RegressionNet) with L1"""
    teacher: str | None = None
    """the renderer package or run folder whose model teaches this run (objectives that distil)"""
    conditions: ConditionSpec = dataclasses.field(default_factory=ConditionSpec)
    """the condition channels the model is trained on"""
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    """the network's size preset and overrides"""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    """the prepared dataset and how clips are cut from it"""
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    """optimiser, learning-rate schedule and EMA"""
    diffusion: DiffusionConfig = dataclasses.field(default_factory=DiffusionConfig)
    """noise levels of the flow-matching objective"""
    student: StudentConfig = dataclasses.field(default_factory=StudentConfig)
    """losses of the student objective (objective: student)"""
    sampling: SamplingDefaults = dataclasses.field(default_factory=SamplingDefaults)
    """how the model is sampled: in validation, in its package, and what distillation trains for
    (the shift is set from the frame size)"""
    validation: ValidationConfig = dataclasses.field(default_factory=ValidationConfig)
    """validation rollouts on real held-out clips and a game ride"""
    distill: DistillConfig = dataclasses.field(default_factory=DistillConfig)
    """few-step distillation (objective: distill)"""

    def __post_init__(self) -> None:
        # configs written before the sampling section had these under validation: read them there
        for key in ("num_denoising_steps", "context_sigma", "context_from_last_step"):
            value = getattr(self.validation, key)
            if value is not None:
                setattr(self.sampling, key, value)
                setattr(self.validation, key, None)
