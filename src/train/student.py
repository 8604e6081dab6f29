"""Building the student objective (``src/diffusion/student.py``) for a run: the teacher as a
renderer, game clips rendered on the fly, and the PatchGAN.

The teacher is any renderer package (or a run folder's package): it renders through the same
renderer interface as play (``torch_renderer`` + ``render_clip``), each clip from a new ride with
a seed drawn by the objective, on the training device. It must take the run's condition
channels; a teacher encoded with other statistics still runs, with a warning, because the run's
conditions are what it is given.
"""

from __future__ import annotations

import torch

from src.common.errors import UserError
from src.diffusion.discriminator import PatchDiscriminator
from src.diffusion.student import StudentObjective
from src.eval.lpips import PerceptualLoss


def _teacher_package(source: str):
    from src.runtime.package import load_package
    from src.train.package import package_folder

    return load_package(package_folder(source))


def student_objective(config, model, data, device) -> StudentObjective:
    """The ``student`` objective from ``config.student`` and ``config.teacher``."""
    from src.runtime.backends import torch_renderer
    from src.runtime.renderer import render_clip
    from src.train.game_clips import GameClips

    settings = config.student
    if config.model.model_class != "StudentUNet":
        raise UserError(
            f"objective student trains a StudentUNet, not {config.model.model_class}",
            "Set model.model_class: StudentUNet (conf/student_cpu.yaml does).",
        )
    if not config.teacher:
        raise UserError(
            "objective student needs a teacher",
            "Pass --teacher game/models/default/dit (a renderer package or run folder).",
        )
    package = _teacher_package(config.teacher)
    if tuple(package.spec.channels) != tuple(config.conditions.channels):
        raise UserError(
            f"the teacher {config.teacher} takes conditions {list(package.spec.channels)}, "
            f"this run {list(config.conditions.channels)}",
            "Train the student on the teacher's condition channels.",
        )
    if package.stats != data.stats:
        print(
            f"note: the teacher {config.teacher} was trained with other condition statistics than "
            f"{config.data.dataset}; it is given the run's conditions"
        )
    height, width = tuple(config.data.crop) if config.data.crop else data.frame_size
    teacher_model = package.model.to(device).eval().requires_grad_(False)
    renderer = torch_renderer(
        teacher_model,
        sampling=package.sampling,
        width=width,
        height=height,
        num_denoising_steps=settings.teacher_denoising_steps,
    )
    if config.data.clip_frames % renderer.frames_per_step:
        raise UserError(
            f"data.clip_frames ({config.data.clip_frames}) is not a multiple of the teacher's "
            f"{renderer.frames_per_step} frames per step"
        )

    def teacher(cond: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        clips = [torch.from_numpy(render_clip(renderer, clip, seed=seed)) for clip, seed in zip(cond, seeds)]
        return torch.stack(clips).to(cond.device)

    game_clips = None
    if settings.game_clips_per_batch > 0:
        game_clips = GameClips.for_run(config, data, seed=settings.game_seed, size=(height, width)).batch
    discriminator = None
    if settings.adversarial_weight > 0:
        # its own seed: the same initial discriminator whatever was drawn before it
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed + 1)
            discriminator = PatchDiscriminator(
                channels=settings.discriminator_channels, layers=settings.discriminator_layers
            )
        discriminator = discriminator.to(device)
    return StudentObjective(
        teacher=teacher,
        game_clips=game_clips,
        game_clips_per_batch=settings.game_clips_per_batch,
        upscale=model.upscale,
        teacher_weight=settings.teacher_weight,
        real_weight=settings.real_weight,
        temporal_weight=settings.temporal_weight,
        adversarial_weight=settings.adversarial_weight,
        perceptual_weight=settings.perceptual_weight,
        perceptual=PerceptualLoss().to(device) if settings.perceptual_weight > 0 else None,
        feedback_corruption_probability=settings.feedback_corruption_probability,
        feedback_noise_max=settings.feedback_noise_max,
        discriminator=discriminator,
        discriminator_learning_rate=settings.discriminator_learning_rate,
    )
