"""Every training objective of a run, built from its config: the one ``OBJECTIVES`` table.

``config.objective`` names a builder ``(config, model, data, device) -> objective``; the objective
classes themselves (the loss maths) live in ``src/diffusion/``:

- ``flow_matching``: the DiT teacher (``FlowMatchingObjective``, the ``diffusion`` section);
- ``distill``: the few-step DiT (``DistillationObjective``, the ``distill`` section), from a
  teacher package or run, with game clips rendered on the fly for its discriminator;
- ``student``: the recurrent U-Net student (``StudentObjective``, the ``student`` section), from
  a teacher renderer, game clips and a PatchGAN;
- ``regression``: the regression baseline (``RegressionObjective``): plain L1 of a direct net
  (``model.model_class: RegressionNet``) to the frames.

Adding an objective: write its class in ``src/diffusion/``, a builder here, and one entry in
``OBJECTIVES``.
"""

from __future__ import annotations

import torch

from src.common.errors import UserError
from src.common.framelets import framelet_count
from src.data.photos import PhotoCrops
from src.diffusion.discriminator import PatchDiscriminator
from src.diffusion.distillation import DistillationObjective
from src.diffusion.flow_matching import resolution_shift
from src.diffusion.objectives import FlowMatchingObjective, RegressionObjective
from src.diffusion.student import StudentObjective
from src.eval.lpips import PerceptualLoss
from src.runtime.backends import torch_renderer
from src.runtime.package import load_package
from src.runtime.renderer import render_clip
from src.train.config import TrainConfig
from src.train.data import TrainingData
from src.train.game_clips import GameClips
from src.train.model_io import build_model, load_weights_from
from src.train.package import package_folder, sampling_shift


def flow_matching_objective(config: TrainConfig, model, data: TrainingData, device) -> FlowMatchingObjective:
    """The teacher's objective, from the ``diffusion`` section."""
    height, width = data.frame_hw
    diffusion = config.diffusion
    return FlowMatchingObjective(
        frames_per_framelet=model.frames_per_step,
        shift=resolution_shift(height * width, base_pixels=diffusion.shift_base_pixels),
        config=diffusion,
        perceptual=PerceptualLoss().to(device) if diffusion.perceptual_weight > 0 else None,
    )


GAME_CLIP_KEYS = ("cond", "raster", "flow_px", "valid_mask")  # what distillation takes of a game clip


def game_clip_source(config, data, *, crop: tuple[int, int] | None):
    """``game_batch(count, generator)`` -> game clips rendered on the fly at the dataset's frame
    size, encoded with the run's spec and statistics, randomly cropped like the real clips: a
    dict of ``cond`` (count t C h w), ``raster`` (count t 3 h w), ``flow_px`` (count t h w 2)
    and ``valid_mask`` (count t h w), all cropped alike. Clip indices come from ``generator``,
    so a step's clips are a function of its seed."""
    height, width = data.frame_hw
    clips = GameClips.for_run(config, data, seed=config.seed)

    def game_batch(count: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        index = int(torch.randint(1 << 30, (1,), generator=generator))
        game = clips.batch(index, count)
        if crop is None or tuple(crop) == (height, width):
            return {key: game[key] for key in GAME_CLIP_KEYS}
        ch, cw = crop
        top = int(torch.randint(height - ch + 1, (1,), generator=generator))
        left = int(torch.randint(width - cw + 1, (1,), generator=generator))
        rows, cols = slice(top, top + ch), slice(left, left + cw)
        cropped = {key: game[key][..., rows, cols] for key in ("cond", "raster", "valid_mask")}
        cropped["flow_px"] = game["flow_px"][..., rows, cols, :]  # count t h w 2
        return cropped

    return game_batch


def distill_objective(config, model, data, device) -> DistillationObjective:
    """The ``distill`` objective from ``config.distill``; the student samples as its package will
    (``sampling.num_denoising_steps``, ``sampling.context_from_last_step``). The teacher is
    ``config.teacher`` (a renderer package or a run folder) loaded into the run's own
    architecture (the student starts from the same weights with ``init_from``); game clips come
    from ``GameClips`` at the dataset's frame size, cropped like the real clips."""
    if not config.teacher:
        raise UserError(
            "objective distill needs a teacher",
            "Pass --teacher PACKAGE_OR_RUN (e.g. game/models/default/dit).",
        )
    teacher = build_model(config, data)
    load_weights_from(teacher, config.teacher)
    distill = config.distill
    shift = sampling_shift(config, data)  # the shift its package will sample with
    game_batch = None
    if distill.game_clips_per_batch > 0:
        game_batch = game_clip_source(
            config, data, crop=tuple(config.data.crop) if config.data.crop else None
        )
    return DistillationObjective(
        teacher=teacher,
        config=distill,
        frames_per_framelet=model.frames_per_step,
        num_denoising_steps=config.sampling.num_denoising_steps,
        context_from_last_step=config.sampling.context_from_last_step,
        context_sigma=config.sampling.context_sigma,
        shift=shift,
        fake_score_recipe=flow_matching_objective(config, model, data, device),
        perceptual=PerceptualLoss().to(device) if distill.perceptual_weight > 0 else None,
        game_batch=game_batch,
        device=device,
    )


def _teacher_package(source: str):
    return load_package(package_folder(source))


def _student_teacher(config, data, device, *, height: int, width: int):
    """The student's teacher as ``teacher(cond, seeds) -> clips``: the ``config.teacher`` package
    rendering through play's renderer interface at ``height`` x ``width``, on ``device``. It must
    take the run's condition channels; other condition statistics only get a note."""
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
    teacher_model = package.model.to(device).eval().requires_grad_(False)
    renderer = torch_renderer(
        teacher_model,
        sampling=package.sampling,
        width=width,
        height=height,
        num_denoising_steps=config.student.teacher_denoising_steps,
    )
    framelet_count(
        config.data.clip_frames,
        renderer.frames_per_step,
        what="data.clip_frames",
        whose="the teacher's",
        error=UserError,
    )

    def teacher(cond: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        clips = [torch.from_numpy(render_clip(renderer, clip, seed=seed)) for clip, seed in zip(cond, seeds)]
        return torch.stack(clips).to(cond.device)

    return teacher


def _student_real_photos(settings, *, height: int, width: int):
    """``sample(count, generator)`` of real-photo crops at the student's output size, or None
    where ``photos_per_batch`` is 0."""
    if settings.photos_per_batch <= 0:
        return None
    if not settings.real_photos:
        raise UserError(
            "student.photos_per_batch needs student.real_photos",
            "Pass --student.real_photos mvtb (or a folder of photos), or set photos_per_batch 0.",
        )
    photos = PhotoCrops.from_source(
        settings.real_photos, size=(height, width), max_zoom=settings.photo_max_zoom
    )
    return photos.sample  # the real frames' size: the student's output size


def student_objective(config, model, data, device) -> StudentObjective:
    """The ``student`` objective from ``config.student`` and ``config.teacher``: the teacher is any
    renderer package (or a run folder's package) rendering through the same renderer interface as
    play (``torch_renderer`` + ``render_clip``), each clip from a new ride with a seed drawn by the
    objective, on the training device. It must take the run's condition channels; a teacher encoded
    with other statistics still runs, with a warning, because the run's conditions are what it is
    given."""
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
    height, width = tuple(config.data.crop) if config.data.crop else data.frame_hw
    teacher = _student_teacher(config, data, device, height=height, width=width)
    game_clips = None
    if settings.game_clips_per_batch > 0:
        game_clips = GameClips.for_run(config, data, seed=settings.game_seed, size=(height, width)).batch
    real_photos = _student_real_photos(settings, height=height, width=width)
    # always built (the objective keeps it only when a GAN weight is on); its own seed: the same
    # initial discriminator whatever was drawn before it
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + 1)
        discriminator = PatchDiscriminator(
            channels=settings.discriminator_channels, layers=settings.discriminator_layers
        ).to(device)
    return StudentObjective(
        teacher=teacher,
        game_clips=game_clips,
        config=settings,
        upscale=model.upscale,
        perceptual=PerceptualLoss().to(device)
        if settings.perceptual_weight > 0 or (settings.game_perceptual_weight or 0) > 0
        else None,
        discriminator=discriminator,
        photo_source=real_photos,
    )


def regression_objective(config, model, data, device) -> RegressionObjective:
    """The regression baseline's L1, for a direct net (``model.model_class: RegressionNet``)."""
    if getattr(model, "renderer_kind", None) != "direct":
        raise UserError(
            f"objective regression trains a direct net, not {config.model.model_class}",
            "Set model.model_class: RegressionNet (conf/regression_cpu.yaml does).",
        )
    return RegressionObjective()


# config.objective -> builder(config, model, data, device). An objective is called as
# ``loss, logs = objective(model, batch, generator=..., critic_step=...)`` and lists the critics it
# trains beside the model in ``critics`` (src/diffusion/critics.py).
OBJECTIVES = {
    "flow_matching": flow_matching_objective,
    "distill": distill_objective,
    "student": student_objective,
    "regression": regression_objective,
}


def build_objective(config: TrainConfig, model, data: TrainingData, device):
    """The run's training objective (``src/diffusion/``), by ``config.objective``."""
    if config.objective not in OBJECTIVES:
        raise UserError(f"unknown objective '{config.objective}'", f"Choose from {', '.join(OBJECTIVES)}.")
    return OBJECTIVES[config.objective](config, model, data, device)
