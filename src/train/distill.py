"""Building the few-step distillation objective of a run (``objective: distill``).

The teacher is ``config.teacher`` (a renderer package or a run folder) loaded into the run's own
architecture (the student starts from the same weights with ``init_from``); game clips come from
``GameClips`` at the dataset's frame size, cropped like the real clips.
"""

from __future__ import annotations

import torch

from src.common.errors import UserError
from src.diffusion.distillation import DistillationObjective
from src.diffusion.flow_matching import resolution_shift
from src.eval.lpips import PerceptualLoss
from src.train.model_io import build_model, load_weights_from


def game_clip_source(config, data, *, crop: tuple[int, int] | None):
    """``game_batch(count, generator)`` -> cond count t C h w: game clips rendered on the fly at
    the dataset's frame size, encoded with the run's spec and statistics, randomly cropped like
    the real clips. Clip indices come from ``generator``, so a step's clips are a function of
    its seed."""
    from src.train.game_clips import GameClips

    height, width = data.frame_size
    clips = GameClips.for_run(config, data, seed=config.seed)

    def game_batch(count: int, generator: torch.Generator) -> torch.Tensor:
        index = int(torch.randint(1 << 30, (1,), generator=generator))
        cond = clips.batch(index, count)["cond"]  # count t C H W
        if crop is None or tuple(crop) == (height, width):
            return cond
        ch, cw = crop
        top = int(torch.randint(height - ch + 1, (1,), generator=generator))
        left = int(torch.randint(width - cw + 1, (1,), generator=generator))
        return cond[..., top : top + ch, left : left + cw]

    return game_batch


def distill_objective(config, model, data, device) -> DistillationObjective:
    """The ``distill`` objective from ``config.distill``; the student samples as its package will
    (``validation.num_denoising_steps``, ``validation.context_from_last_step``)."""
    if not config.teacher:
        raise UserError(
            "objective distill needs a teacher", "Pass --teacher PACKAGE_OR_RUN (e.g. game/models/default/dit)."
        )
    teacher = build_model(config, data)
    load_weights_from(teacher, config.teacher)
    height, width = data.frame_size
    distill = config.distill
    shift = resolution_shift(height * width, base_pixels=config.diffusion.shift_base_pixels)
    from src.train.loop import flow_matching_objective

    game_batch = None
    if distill.game_clips_per_batch > 0:
        game_batch = game_clip_source(
            config, data, crop=tuple(config.data.crop) if config.data.crop else None
        )
    return DistillationObjective(
        teacher=teacher,
        frames_per_framelet=model.frames_per_step,
        num_denoising_steps=config.validation.num_denoising_steps,
        context_from_last_step=config.validation.context_from_last_step,
        context_sigma=config.validation.context_sigma,
        shift=shift,
        fake_score_recipe=flow_matching_objective(config, model, data, device),
        ode_weight=distill.ode_weight,
        ode_teacher_steps=distill.ode_teacher_steps,
        dmd_weight=distill.dmd_weight,
        dmd_sigma_range=tuple(distill.dmd_sigma_range),
        real_x0_weight=distill.real_x0_weight,
        gan_weight=distill.gan_weight,
        perceptual_weight=distill.perceptual_weight,
        perceptual=PerceptualLoss().to(device) if distill.perceptual_weight > 0 else None,
        game_clips_per_batch=distill.game_clips_per_batch,
        game_batch=game_batch,
        critic_steps=distill.critic_steps,
        critic_learning_rate=distill.critic_learning_rate,
        discriminator_learning_rate=distill.discriminator_learning_rate,
        discriminator_channels=distill.discriminator_channels,
        device=device,
    )
