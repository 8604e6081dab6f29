"""The student objective: a recurrent one-step student learns from a teacher's rollouts, real
frames, a PatchGAN and the game's exact motion.

Per call (one micro-batch of ``b`` real clips, ``b t 3 H W`` frames and ``b t C H W`` conditions):

1. ``g`` game clips are rendered on the fly (``game_clips(index, g)``, ``src/train/game_clips.py``;
   the index comes from the step's generator, so a resumed run sees the same clips) with their
   exact flow and the mask of pixels the flow explains.
2. The teacher (any renderer: ``teacher(cond, seeds)`` renders each clip from a new ride, under
   no_grad) renders all ``b + g`` clips: the targets.
3. The student renders the same clips as its own recurrent rollout from a new ride, every frame
   fed back into the next; with probability ``p`` a fed-back frame gets Gaussian noise and, again
   with ``p``, a 3x3 blur, so that it learns to correct, not copy, a worse history than its own
   (errors then shrink along a rollout instead of accumulating).
4. The loss, each term weighted:

   * ``teacher``:     ``|S - T|``, on all clips;
   * ``real``:        ``|S - x|`` against the real frames ``x``, on the real clips;
   * ``temporal``:    ReCoNet's output temporal loss (Gao et al. 2018, eq. 5, by default with the
     target in place of the input): ``|(S_t - W(S_{t-1})) - (T_t - W(T_{t-1}))|`` on game clips,
     ``W`` the backward warp by the game's exact flow, over the pixels the flow explains (no
     disocclusions or motion boundaries, sources inside the frame). The student may change between
     frames only as much as its target does: flicker is penalised, real motion and lighting are
     not. ``temporal_reference="raster"`` puts the game's raster frames in place of ``T``, as
     ReCoNet has its input there: a teacher that flickers then cannot teach the flicker;
   * ``perceptual`` (off by default): a perceptual distance (the builder gives ST-LPIPS,
     ``src/eval/lpips.py``) of ``S`` to the real frames on the real clips and to ``T`` on the
     game clips: what L1 misses about texture and structure, without a discriminator;
   * ``adversarial``: the hinge GAN loss ``-D(S)`` of a PatchGAN ``D`` (Isola et al. 2017) that is
     trained in the same call, with its own AdamW, on ``relu(1 - D(x)) + relu(1 + D(S))`` (real
     frames, and crops of real photos when given, against the student's frames of all clips):
     texture the L1 terms average away. Its real side holds only real images: the real clips'
     frames and real photos (or only the photos: a realism stage that wants street-like "real"
     sets ``discriminator_real_frames`` off), never a raster, a teacher's or the student's frame.
     On game clips it is weighted apart (``game_adversarial_weight``): there it is the realism
     loss of unpaired translation (EPE, HyPER-GAN), the game frame judged against real ones; with
     ``adversarial_weight`` 0 only the game clips' frames are judged;
   * ``structure`` (game clips, off by default): ``|A(S) - A(R)|`` with ``R`` the game's raster
     frame and ``A`` the colour area-averaged over 8x8 pixels: the scene's layout and rough colour
     stay the game's while everything finer is free to become real texture (the content term of
     unpaired translation, without pulling each pixel to the raster's flat colours as L1 or a
     perceptual distance to the raster would);
   * ``grid`` (off by default): the fixed-phase 4-px periodic component of the high-passed output
     per 16-px tile (``grid_energy``), a differentiable stand-in for the grid peaks of
     ``src/eval/metrics.py``: a checkerboard from the PixelShuffle head is penalised, texture is
     not. On game clips ``teacher`` and ``perceptual`` may be weighted apart too
     (``game_teacher_weight``, ``game_perceptual_weight``): a teacher that renders the game like
     its raster holds the student there.

The discriminator is this objective's critic (``critics``): once per call its hinge loss goes to
the loop's ``critic_step`` (``src/diffusion/critics.py``), which owns its optimiser, averages its
gradients over the ranks, steps it and checkpoints it with the run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.common.errors import UserError
from src.conditions.encode import downsample_encoded
from src.diffusion.config import StudentConfig
from src.diffusion.critics import CriticStep, discriminator_critic
from src.diffusion.flow_matching import randn_like_on
from src.diffusion.temporal import temporal_loss


def layout(frames: Tensor, *, factor: int = 8) -> Tensor:
    """``... 3 H W`` -> ``... 3 H/f W/f``: the colour area-averaged over ``factor`` pixels (where
    things are and their rough colour; nothing finer than ``factor`` pixels)."""
    c, h, w = frames.shape[-3:]
    small = F.avg_pool2d(frames.reshape(-1, c, h, w), factor)
    return small.reshape(*frames.shape[:-2], *small.shape[-2:])


def structure_loss(output: Tensor, raster: Tensor, *, factor: int = 8) -> Tensor:
    """Mean ``|layout(output) - layout(raster)|`` (see ``layout``)."""
    return (layout(output, factor=factor) - layout(raster, factor=factor)).abs().mean()


def grid_energy(frames: Tensor, *, period: int = 4, tile: int = 16) -> Tensor:
    """Mean squared fixed-phase periodic component of ``frames`` (``... c H W``): the frame minus
    its 3x3 average, averaged per ``tile``-px tile over each of the ``period**2`` pixel phases,
    those phase means centred. A pattern that repeats every 2 or 4 pixels in place (a
    checkerboard) has phase means far from each other; texture and edges, whose phase wanders,
    average out. Frames whose sides are not multiples of ``tile`` are cropped."""
    c, h, w = frames.shape[-3:]
    x = frames.reshape(-1, c, h, w)[..., : h - h % tile, : w - w % tile]
    x = x - F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    n, c, h, w = x.shape
    a = tile // period
    phases = x.reshape(n, c, h // tile, a, period, w // tile, a, period).mean(dim=(3, 6))
    phases = phases - phases.mean(dim=(3, 5), keepdim=True)
    return phases.pow(2).mean()


class StudentObjective:
    """See the module docstring. ``teacher(cond b t C H W, seeds) -> b t 3 H W`` and
    ``game_clips(index, count) -> dict`` (cond, flow_px, valid_mask) are given by the builder
    (``src/train/objectives.py``), so this module needs neither the runtime nor the game."""

    def __init__(
        self,
        *,
        teacher: Callable[[Tensor, list[int]], Tensor],
        game_clips: Callable[[int, int], dict] | None,
        config: StudentConfig,
        upscale: int = 1,
        perceptual: Callable[[Tensor, Tensor], Tensor] | None = None,
        discriminator: nn.Module | None = None,
        photo_source: Callable[[int, torch.Generator], Tensor] | None = None,
    ):
        """``config``: the run's ``student`` section (the weights, the feedback corruption, the
        discriminator's settings, the photos per batch); ``photo_source(count, generator)``: the
        real photos its ``real_photos`` names, as crops."""
        c = config
        self.teacher, self.game_clips = teacher, game_clips
        self.game_teacher_weight = (
            c.teacher_weight if c.game_teacher_weight is None else c.game_teacher_weight
        )
        self.game_adversarial_weight = (
            c.adversarial_weight if c.game_adversarial_weight is None else c.game_adversarial_weight
        )
        self.game_perceptual_weight = c.game_perceptual_weight
        self.structure_weight, self.grid_weight = c.structure_weight, c.grid_weight
        self.real_photos, self.photos_per_batch = photo_source, c.photos_per_batch if photo_source else 0
        if not c.discriminator_real_frames and not self.photos_per_batch:
            raise ValueError("discriminator_real_frames=False needs real photos for the real side")
        self.discriminator_real_frames = c.discriminator_real_frames
        self.game_clips_per_batch = c.game_clips_per_batch if game_clips is not None else 0
        self.upscale = upscale
        self.teacher_weight, self.real_weight = c.teacher_weight, c.real_weight
        self.temporal_weight, self.adversarial_weight = c.temporal_weight, c.adversarial_weight
        if c.temporal_reference not in ("teacher", "raster"):
            raise UserError(
                f"student.temporal_reference must be 'teacher' or 'raster', got {c.temporal_reference!r}"
            )
        self.temporal_reference = c.temporal_reference
        self.corruption_probability, self.noise_max = c.feedback_corruption_probability, c.feedback_noise_max
        if (c.perceptual_weight > 0 or (c.game_perceptual_weight or 0) > 0) and perceptual is None:
            raise ValueError("perceptual_weight needs a perceptual distance (perceptual=...)")
        self.perceptual_weight, self.perceptual = c.perceptual_weight, perceptual
        adversarial = c.adversarial_weight > 0 or (
            game_clips is not None and self.game_adversarial_weight > 0
        )
        self.discriminator = discriminator if adversarial else None
        self.critics = []
        if self.discriminator is not None:
            self.critics.append(
                discriminator_critic(
                    self.discriminator,
                    learning_rate=c.discriminator_learning_rate,
                    max_grad_norm=c.discriminator_max_grad_norm,
                    warmup_steps=c.discriminator_warmup_steps,
                )
            )

    def corruption(
        self, clips: int, frames: int, height: int, width: int, *, generator: torch.Generator, like: Tensor
    ):
        """Noise ``n t 3 H W`` and blur amounts ``n t`` for the fed-back frames, on ``like``'s
        device and dtype (the noise drawn there: ``randn_like_on``)."""
        p = self.corruption_probability
        noisy = torch.rand(clips, frames, generator=generator) < p
        std = (torch.rand(clips, frames, generator=generator) * self.noise_max * noisy).to(like)
        noise = randn_like_on((clips, frames, 3, height, width), generator=generator, like=like)
        noise = noise * std[..., None, None, None]
        blur = (torch.rand(clips, frames, generator=generator) < p).to(like)
        return noise, blur

    def discriminator_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """The PatchGAN's hinge loss: real images above +1, the student's frames below -1."""
        discriminator = self.discriminator
        discriminator.requires_grad_(True)
        return F.relu(1.0 - discriminator(real)).mean() + F.relu(1.0 + discriminator(fake.detach())).mean()

    def __call__(
        self, model, batch: dict, *, generator: torch.Generator, critic_step: CriticStep
    ) -> tuple[Tensor, dict[str, float]]:
        frames, cond = batch["frames"], batch["cond"]  # b t 3 H W, b t C H W
        device = frames.device
        b, t, _, height, width = frames.shape
        game = None
        if self.game_clips_per_batch:
            index = int(torch.randint(0, 1 << 30, (1,), generator=generator))
            game = {k: v.to(device) for k, v in self.game_clips(index, self.game_clips_per_batch).items()}
            cond = torch.cat([cond, game["cond"].to(cond.dtype)])
        clips = cond.shape[0]
        seeds = torch.randint(0, 1 << 30, (clips,), generator=generator).tolist()
        with torch.no_grad():
            target = self.teacher(cond, seeds).to(device=device, dtype=frames.dtype)  # n t 3 H W
        noise, blur = self.corruption(clips, t, height, width, generator=generator, like=target)
        output = model(
            downsample_encoded(cond, self.upscale),
            feedback_noise=noise,
            feedback_blur=blur,
            clamp=False,
        ).float()  # n t 3 H W
        logs: dict[str, float] = {}
        loss = output.new_zeros(())
        # each step adds its terms to the loss in turn (the order of the sum stays fixed)
        loss = self._pixel_terms(loss, logs, output, target, frames, game)
        loss = self._perceptual_terms(loss, logs, output, target, frames, game)
        if self.discriminator is not None:
            loss = self._adversarial_term(
                loss, logs, output, frames, game, generator=generator, critic_step=critic_step
            )
        return loss, logs

    def _pixel_terms(
        self, loss: Tensor, logs: dict, output: Tensor, target: Tensor, frames: Tensor, game: dict | None
    ) -> Tensor:
        """``loss`` plus the teacher, real, temporal, structure and grid terms (``logs`` gets each)."""
        b, t = frames.shape[:2]
        clips = output.shape[0]
        if self.teacher_weight or (game is not None and self.game_teacher_weight):
            per_clip = (output - target).abs().mean(dim=(1, 2, 3, 4))  # n
            weights = torch.full_like(per_clip, self.teacher_weight)
            weights[b:] = self.game_teacher_weight
            teacher_l1 = (weights * per_clip).sum() / clips
            loss = loss + teacher_l1
            logs["teacher_l1"] = float(per_clip.mean().detach())
        if self.real_weight:
            real_l1 = (output[:b] - frames).abs().mean()
            loss = loss + self.real_weight * real_l1
            logs["real_l1"] = float(real_l1.detach())
        if self.temporal_weight and game is not None and t > 1:
            reference = game["raster"] if self.temporal_reference == "raster" else target[b:]
            temporal = temporal_loss(output[b:], reference.float(), game["flow_px"], game["valid_mask"])
            loss = loss + self.temporal_weight * temporal
            logs["temporal"] = float(temporal.detach())
        if self.structure_weight and game is not None:
            structure = structure_loss(output[b:], game["raster"].to(output.dtype))
            loss = loss + self.structure_weight * structure
            logs["structure"] = float(structure.detach())
        if self.grid_weight:
            grid = grid_energy(output)
            loss = loss + self.grid_weight * grid
            logs["grid"] = float(grid.detach())
        return loss

    def _perceptual_terms(
        self, loss: Tensor, logs: dict, output: Tensor, target: Tensor, frames: Tensor, game: dict | None
    ) -> Tensor:
        """``loss`` plus the perceptual terms: one over all clips, or the real and the game clips
        weighted apart (``game_perceptual_weight``)."""
        b = frames.shape[0]
        if self.perceptual_weight and self.game_perceptual_weight is None:
            reference = torch.cat([frames.float(), target[b:].float()])  # real frames, then the teacher's
            perceptual = self.perceptual(output, reference)
            loss = loss + self.perceptual_weight * perceptual
            logs["perceptual"] = float(perceptual.detach())
        elif self.perceptual is not None:  # weighted apart: the real clips against their frames
            if self.perceptual_weight:
                perceptual = self.perceptual(output[:b], frames.float())
                loss = loss + self.perceptual_weight * perceptual
                logs["perceptual"] = float(perceptual.detach())
            if game is not None and self.game_perceptual_weight:  # the game clips against the teacher's
                game_perceptual = self.perceptual(output[b:], target[b:].float())
                loss = loss + self.game_perceptual_weight * game_perceptual
                logs["game_perceptual"] = float(game_perceptual.detach())
        return loss

    def _adversarial_term(
        self,
        loss: Tensor,
        logs: dict,
        output: Tensor,
        frames: Tensor,
        game: dict | None,
        *,
        generator,
        critic_step: CriticStep,
    ) -> Tensor:
        """One discriminator step, then ``loss`` plus the student's hinge GAN term."""
        b, t = frames.shape[:2]
        # without a GAN term on real clips only the game clips' frames are judged
        judged = output if self.adversarial_weight else output[b:]
        fake = judged.reshape(-1, *output.shape[2:])
        real = self.real_images(frames, generator=generator).to(device=frames.device, dtype=torch.float32)
        discriminator_loss = self.discriminator_loss(real, fake)
        critic_step("discriminator", discriminator_loss)
        logs["discriminator"] = float(discriminator_loss.detach())
        self.discriminator.requires_grad_(False)  # the generator's loss trains the student only
        adversarial = -self.discriminator(fake).reshape(judged.shape[0], t, -1).mean(dim=(1, 2))
        weights = torch.full_like(adversarial, self.game_adversarial_weight)
        if self.adversarial_weight:
            weights[:b] = self.adversarial_weight
        loss = loss + (weights * adversarial).sum() / judged.shape[0]
        logs["adversarial"] = float(adversarial.mean().detach())
        if game is not None:
            logs["game_adversarial"] = float(adversarial[-self.game_clips_per_batch :].mean().detach())
        return loss

    def real_images(self, frames: Tensor, *, generator: torch.Generator) -> Tensor:
        """The discriminator's real side: the real clips' frames (``b t 3 H W`` -> ``(b t) 3 H W``)
        and, when given, ``photos_per_batch`` crops of real photos at the same size. Nothing
        rendered ever enters it. ``discriminator_real_frames`` off: the photos alone."""
        real = frames.reshape(-1, *frames.shape[2:]).float()
        if not self.photos_per_batch:
            return real
        photos = self.real_photos(self.photos_per_batch, generator).to(real.device)
        if photos.shape[1:] != real.shape[1:]:
            raise ValueError(
                f"real photos of shape {tuple(photos.shape[1:])}, frames {tuple(real.shape[1:])}"
            )
        return torch.cat([real, photos]) if self.discriminator_real_frames else photos
