"""The training objectives' config sections (no torch): ``DiffusionConfig`` (the teacher's flow
matching), ``DistillConfig`` (few-step distillation) and ``StudentConfig`` (the recurrent
student). Each objective in this package takes its section whole, so each default is written once,
here; ``src/train/config.py`` composes them into a run's config."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class DiffusionConfig:
    """The flow-matching objective's noise levels."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "sigma_logit_mean": "(-inf, inf)",
        "sigma_logit_std": "(0, inf)",
        "shift_base_pixels": "[1, inf)",
        "context_noise_max": "[0, 1]",
        "clean_context_probability": "[0, 1]",
        "perceptual_weight": "[0, inf)",
    }

    sigma_logit_mean: float = 0.0
    """mean of the logit-normal distribution of training noise levels (before the time shift)"""
    sigma_logit_std: float = 1.0
    """standard deviation of the logit-normal distribution of training noise levels"""
    shift_base_pixels: int = 64 * 64
    """the image size whose time shift is 1; larger frames get sqrt(pixels / this)"""
    loss_weighting: str = "velocity"
    """velocity (the rectified-flow objective for an x-predicting net) or x0"""
    context_noise_max: float = 0.1
    """upper bound of the noise level of the clean context at generation (noise augmentation)"""
    clean_context_probability: float = 0.25
    """chance per clip that earlier framelets get only context noise (teaches generation's setting)"""
    perceptual_weight: float = 0.0
    """ST-LPIPS between the x0 prediction and the frame, on framelets with sigma <= 0.5 (0 = off)"""


@dataclasses.dataclass
class StudentConfig:
    """The student objective (``objective: student``): what the recurrent student learns from."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "teacher_weight": "[0, inf)",
        "real_weight": "[0, inf)",
        "temporal_weight": "[0, inf)",
        "adversarial_weight": "[0, inf)",
        "game_clips_per_batch": "[0, inf)",
        "game_seed": "[0, inf)",
        "feedback_corruption_probability": "[0, 1]",
        "feedback_noise_max": "[0, inf)",
        "discriminator_channels": "[1, inf)",
        "discriminator_layers": "[1, inf)",
        "discriminator_learning_rate": "(0, inf)",
        "discriminator_warmup_steps": "[0, inf)",
        "discriminator_max_grad_norm": "(0, inf)",
        "teacher_denoising_steps": "[1, inf)",
        "perceptual_weight": "[0, inf)",
        "game_teacher_weight": "[0, inf)",
        "game_adversarial_weight": "[0, inf)",
        "game_perceptual_weight": "[0, inf)",
        "structure_weight": "[0, inf)",
        "grid_weight": "[0, inf)",
        "photos_per_batch": "[0, inf)",
        "photo_max_zoom": "[1, inf)",
    }

    teacher_weight: float = 1.0
    """L1 to the teacher's rollout of the same conditions (real and game clips)"""
    game_teacher_weight: float | None = None
    """the teacher L1 on game clips (default: teacher_weight); lower it when the teacher renders
    the game like its raster"""
    game_adversarial_weight: float | None = None
    """the GAN loss on game clips, the unpaired realism term (default: adversarial_weight)"""
    game_perceptual_weight: float | None = None
    """ST-LPIPS to the teacher on game clips, weighted apart from the real clips' perceptual_weight
    (default: one perceptual term over all clips, as before)"""
    structure_weight: float = 0.0
    """game clips: L1 of the 8x8-averaged colour to the raster's (the game's layout and rough
    colour, free texture)"""
    grid_weight: float = 0.0
    """penalty on fixed-phase 2/4-px patterns in the output (a PixelShuffle checkerboard)"""
    real_photos: str = ""
    """real images added to the discriminator's real side, comma-separated: 'mvtb' (PyPI
    mvtb-data, MIT), a folder of .png/.jpg, a video file (its training part's frames); empty: none
    (src/data/photos.py)"""
    discriminator_real_frames: bool = True
    """the real clips' frames are on the discriminator's real side too (off: real_photos only)"""
    photos_per_batch: int = 0
    """crops of real_photos per step on the discriminator's real side"""
    photo_max_zoom: float = 2.0
    """photo crops zoom in up to this factor from a crop that spans the photo's shorter side"""
    real_weight: float = 1.0
    """L1 to the real frames themselves (real clips)"""
    temporal_weight: float = 1.0
    """ReCoNet's output temporal loss under the game's exact flow: change as much as the reference"""
    temporal_reference: str = "teacher"
    """what the student's frame-to-frame change on game clips is held to: 'teacher' (the
    teacher's rollout, which may flicker itself) or 'raster' (the game's own frames: ReCoNet's
    original form, the change the scene really has)"""
    adversarial_weight: float = 0.05
    """hinge GAN loss of a PatchGAN that compares the student's frames with real frames"""
    perceptual_weight: float = 0.0
    """ST-LPIPS (src/eval/lpips.py) to the real frames (real clips) and the teacher's (game clips)"""
    game_clips_per_batch: int = 2
    """game clips rendered on the fly next to the real clips of each batch (0: real clips only)"""
    game_seed: int = 0
    """seed of the game worlds of those clips"""
    feedback_corruption_probability: float = 0.3
    """chance per fed-back frame that noise is added to it, and again that it is blurred"""
    feedback_noise_max: float = 0.1
    """upper bound of the noise's standard deviation (frames in [-1, 1])"""
    discriminator_channels: int = 32
    """width of the PatchGAN's first layer (doubles per layer)"""
    discriminator_layers: int = 3
    """strided 4x4 layers of the PatchGAN"""
    discriminator_learning_rate: float = 2e-4
    """the PatchGAN's AdamW learning rate"""
    discriminator_warmup_steps: int = 0
    """model steps over which the PatchGAN's learning rate rises linearly to it (0: from the start)"""
    discriminator_max_grad_norm: float | None = None
    """the PatchGAN's gradient-norm clip (None: not clipped)"""
    teacher_denoising_steps: int | None = None
    """sampling steps of a diffusion teacher (default: its package's)"""


@dataclasses.dataclass
class DistillConfig:
    """The few-step distillation objective (``objective: distill``, src/diffusion/distillation.py).
    The student is trained for the package's sampling: ``sampling.num_denoising_steps`` steps,
    ``sampling.context_from_last_step``."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "ode_weight": "[0, inf)",
        "ode_teacher_steps": "[1, inf)",
        "dmd_weight": "[0, inf)",
        "dmd_sigma_range": "(0, 1)",
        "real_x0_weight": "[0, inf)",
        "gan_weight": "[0, inf)",
        "game_clips_per_batch": "[0, inf)",
        "temporal_weight": "[0, inf)",
        "critic_steps": "[0, inf)",
        "critic_learning_rate": "(0, inf)",
        "discriminator_learning_rate": "(0, inf)",
        "discriminator_channels": "[1, inf)",
        "perceptual_weight": "[0, inf)",
        "critic_warmup_steps": "[0, inf)",
        "critic_max_grad_norm": "(0, inf)",
        "discriminator_max_grad_norm": "(0, inf)",
    }

    ode_weight: float = 1.0
    """regression onto the teacher's ODE result from the same noise (the initialisation and baseline)"""
    ode_teacher_steps: int = 8
    """Euler steps of the teacher's rollout that makes the ODE targets"""
    dmd_weight: float = 1.0
    """distribution matching (DMD): the teacher's score against a trainable fake score"""
    dmd_sigma_range: tuple[float, float] = (0.02, 0.98)
    """noise levels of the DMD gradient, uniform in this range, then time-shifted"""
    real_x0_weight: float = 1.0
    """paired supervision on the real clips: the student's frames against the real frames"""
    gan_weight: float = 0.05
    """the generator's adversarial term (a discriminator of real video frames against generated ones)"""
    perceptual_weight: float = 0.0
    """ST-LPIPS (src/eval/lpips.py) of the student's frames to the real frames (real clips), beside real_x0"""
    game_clips_per_batch: int = 2
    """game G-buffer clips rendered on the fly and added to every batch (generated, never real)"""
    temporal_weight: float = 0.0
    """on the game clips: ReCoNet's output temporal loss under the game's exact flow (0: off)"""
    temporal_reference: str = "raster"
    """the clip whose frame-to-frame change the game clips' should match: raster or teacher"""
    critic_steps: int = 5
    """fake-score and discriminator updates per generator step (DMD2's two time-scale rule)"""
    critic_learning_rate: float = 1e-4
    """AdamW learning rate of the fake score"""
    discriminator_learning_rate: float = 2e-4
    """AdamW learning rate of the discriminator"""
    critic_warmup_steps: int = 0
    """model steps over which both critics' learning rates rise linearly to theirs (0: from the start)"""
    critic_max_grad_norm: float | None = 1.0
    """the fake score's gradient-norm clip (None: not clipped)"""
    discriminator_max_grad_norm: float | None = None
    """the discriminator's gradient-norm clip (None: not clipped)"""
    discriminator_channels: int = 32
    """width of the discriminator's first layer (doubles twice)"""
