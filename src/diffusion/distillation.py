"""Few-step distillation of an x0-predicting causal denoiser, trained on its own rollouts.

``DistillationObjective`` is a training objective like ``FlowMatchingObjective``: the generic
loop calls ``loss, logs = objective(model, batch, generator=..., critic_step=...)`` and steps
the generator (the student) on ``loss``; the objective computes its critics' losses inside the
call and hands each to ``critic_step``, the loop's optimiser step of that critic. Per call:

1. **Batch.** ``batch`` holds real clips (``frames`` b t 3 h w, ``cond``); ``game_batch(n)``
   adds ``n`` game G-buffer clips (their ``cond``; their frames are generated, their raster is
   never a target of the frames and never "real", only of their frame-to-frame change in the
   temporal term). Every sample carries its ``source``.
2. **Self-forcing rollout** (Huang et al. 2025): the student renders every clip framelet by
   framelet with the KV cache, exactly as play does (``src/diffusion/rollout.py:
   sample_framelet``: the same steps, the same context, from its *own* earlier output). One
   random exit step per call gets gradients, so every step of a few-step model is trained.
   With ``context_from_last_step`` the context is the last pass's keys/values and gradients
   flow through them into earlier framelets.
3. **Losses of the student** (weights in ``DistillConfig``):
   * ``ode``: regression onto the teacher's own autoregressive ODE rollout (``ode_teacher_steps``
     Euler steps) from the *same* per-framelet noise and conditions (CausVid / Self-Forcing's
     initialisation). The teacher is causal itself, so the target of framelet ``i`` is a
     function of what framelet ``i`` can see (Causal Forcing's point against bidirectional
     teachers), and the student learns it directly, with no separate initialisation run.
   * ``dmd``: distribution matching (Yin et al. 2024, DMD2 eq. 2 / Self-Forcing's ``dmd.py``):
     ``x_s = add_noise(x_gen, eps, s)``, ``g = (fake(x_s) - teacher(x_s)) / mean|x_gen -
     teacher(x_s)|``, loss ``0.5 || x_gen - sg(x_gen - g) ||^2``, whose gradient is ``g``: the
     difference of the two scores, normalised per sample. Both score networks see the whole
     clip at independent per-framelet levels (the teacher was trained with diffusion forcing).
   * ``real_x0``: on the real clips, the generated frames against the real frames (paired
     supervision keeps real-clip fidelity).
   * ``perceptual`` (off by default): a perceptual distance of the same pairs (the builder
     gives ST-LPIPS, ``src/eval/lpips.py``).
   * ``gan``: non-saturating generator loss of a small patch discriminator on every
     generated frame, real and game conditions alike.
   * ``temporal`` (off by default): on the game clips, ReCoNet's output temporal loss under the
     game's exact flow (``src/diffusion/temporal.py``): the generated frames change from frame
     to frame as much as the reference does, the game's raster (``temporal_reference="raster"``,
     the student's flicker fix) or the teacher's ODE rollout (``"teacher"``).
4. **Critics** (before the student's losses, on the detached rollout): ``critic_steps``
   updates of the fake score (the teacher's own flow-matching recipe on the generated clips,
   a copy of the teacher at the start, so DMD starts at zero and grows as the student moves)
   and of the discriminator (real video frames only against generated frames), each with its
   own learning rate (DMD2's two time-scale rule; about 5 critic steps per generator step keep
   the critic from oscillating). The objective lists them in ``critics`` and hands each loss to
   the loop's ``critic_step`` (``src/diffusion/critics.py``), which owns their optimisers.

Everything random comes from ``generator`` (CPU), and the game clips are a function of their
index, so a step is a pure function of the weights, the batch and the seed: 2 + 2 resumed
steps equal 4.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.common.framelets import framelet_count
from src.diffusion.config import DistillConfig
from src.diffusion.critics import FAKE_SCORE_BETAS, Critic, CriticStep, discriminator_critic
from src.diffusion.discriminator import PatchDiscriminator
from src.diffusion.flow_matching import add_noise, make_sigmas, randn_like_on, time_shift
from src.diffusion.objectives import FlowMatchingObjective
from src.diffusion.rollout import sample_framelet
from src.diffusion.temporal import temporal_loss

REAL_VIDEO = "real_video"
GAME = "game"


def discriminator_batch(
    *, real_frames: Tensor, real_sources: list[str], generated: Tensor
) -> tuple[Tensor, Tensor]:
    """The discriminator's images and labels: ``real_frames`` b t 3 h w of samples whose source
    is real video (label 1), every generated frame (label 0). A game frame can never be labelled
    real: a real side from any other source is an error."""
    if any(source != REAL_VIDEO for source in real_sources) or len(real_sources) != real_frames.shape[0]:
        raise AssertionError(
            f"the discriminator's real side must be real video frames only, got {real_sources}"
        )
    real = real_frames.flatten(0, 1)  # (b t) 3 h w
    fake = generated.flatten(0, 1)
    images = torch.cat([real, fake])
    labels = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))]).to(images.device)
    return images, labels


def dmd_loss(x_gen: Tensor, teacher_x0: Tensor, fake_x0: Tensor) -> Tensor:
    """DMD's surrogate loss: its gradient w.r.t. ``x_gen`` (b t 3 h w) is the normalised score
    difference ``(fake_x0 - teacher_x0) / mean|x_gen - teacher_x0|`` (over each sample), scaled
    by 1 / numel as a mean-reduced MSE."""
    dims = tuple(range(1, x_gen.ndim))
    normaliser = (x_gen.detach() - teacher_x0).abs().mean(dim=dims, keepdim=True).clamp(min=1e-6)
    grad = torch.nan_to_num((fake_x0 - teacher_x0) / normaliser)
    return 0.5 * F.mse_loss(x_gen.float(), (x_gen.detach() - grad).float())


def unwrap(model: nn.Module) -> nn.Module:
    """The module behind torch.compile / DDP wrappers (the rollout calls its cached methods)."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


class DistillationObjective:
    """Few-step self-forcing distillation with ODE regression, DMD and a GAN head (see above).

    ``teacher``: the frozen x0-predicting denoiser (parallel ``teacher(x, cond, sigma b n)`` and
    the ``CachedDenoiser`` methods); ``game_batch(count, generator)``: game clips at the training
    frame size, a dict of ``cond`` (count t C h w) and, for the temporal term, ``raster``
    (count t 3 h w), ``flow_px`` (count t h w 2) and ``valid_mask`` (count t h w); or None.

    Under data parallelism the rollout calls the student's cached methods, not the DDP wrapper,
    so DDP never sees the student's backward: ``model_gradients_need_averaging`` tells the loop
    to average the student's gradients over the ranks itself before its optimiser step, as it does
    the critics' before each of theirs.
    """

    model_gradients_need_averaging = True

    def __init__(
        self,
        *,
        teacher: nn.Module,
        config: DistillConfig,
        frames_per_framelet: int,
        num_denoising_steps: int,
        context_from_last_step: bool,
        context_sigma: float,
        shift: float,
        fake_score_recipe: FlowMatchingObjective,
        perceptual: Callable[[Tensor, Tensor], Tensor] | None = None,
        game_batch: Callable[[int, torch.Generator], dict[str, Tensor] | None] | None = None,
        device: torch.device | str = "cpu",
    ):
        """``config``: the run's ``distill`` section (weights, critics, game clips); the rest
        is the sampling the student is trained for and what the builder makes."""
        c = config
        self.teacher = teacher.to(device).eval().requires_grad_(False)
        self.f = frames_per_framelet
        self.sigmas = make_sigmas(num_denoising_steps, shift)
        self.teacher_sigmas = make_sigmas(c.ode_teacher_steps, shift)
        self.context_from_last_step = context_from_last_step
        self.context_sigma = context_sigma
        self.shift = shift
        self.weights = {
            "ode": c.ode_weight,
            "dmd": c.dmd_weight,
            "real_x0": c.real_x0_weight,
            "gan": c.gan_weight,
        }
        if c.perceptual_weight > 0 and perceptual is None:
            raise ValueError("perceptual_weight needs a perceptual distance (perceptual=...)")
        self.weights["perceptual"], self.perceptual = c.perceptual_weight, perceptual
        if c.temporal_reference not in ("raster", "teacher") or (
            c.temporal_reference == "teacher" and not c.ode_weight
        ):
            raise ValueError(
                f"distill.temporal_reference must be 'raster' or 'teacher' (with ode_weight > 0), got "
                f"{c.temporal_reference!r}"
            )
        self.weights["temporal"], self.temporal_reference = c.temporal_weight, c.temporal_reference
        self.dmd_sigma_range = tuple(c.dmd_sigma_range)
        self.game_clips_per_batch = c.game_clips_per_batch if game_batch is not None else 0
        self.game_batch = game_batch
        self.critic_steps = c.critic_steps
        self.fake_score_recipe = fake_score_recipe
        self.critics = self._build_critics(c, device=device)

    def _build_critics(self, c: DistillConfig, *, device) -> list[Critic]:
        """The fake-score copy of the teacher (for DMD) and the discriminator (for the GAN term),
        where its weight is on, with their optimisers' settings from the ``distill`` section."""
        self.fake_score = self.discriminator = None
        critics = []
        if self.weights["dmd"] > 0:
            self.fake_score = copy.deepcopy(self.teacher).requires_grad_(True).train()
            critics.append(
                Critic(
                    "fake_score",
                    self.fake_score,
                    learning_rate=c.critic_learning_rate,
                    betas=FAKE_SCORE_BETAS,
                    max_grad_norm=c.critic_max_grad_norm,
                    warmup_steps=c.critic_warmup_steps,
                )
            )
        if self.weights["gan"] > 0:
            self.discriminator = PatchDiscriminator(channels=c.discriminator_channels).to(device)
            critics.append(
                discriminator_critic(
                    self.discriminator,
                    learning_rate=c.discriminator_learning_rate,
                    max_grad_norm=c.discriminator_max_grad_norm,
                    warmup_steps=c.critic_warmup_steps,
                )
            )
        return critics

    # -- rollouts --

    def rollout(
        self,
        model,
        cond: Tensor,
        noise: Tensor,
        *,
        sigmas: Tensor,
        context_from_last_step: bool,
        generator: torch.Generator,
        grad_step: int | None,
    ) -> Tensor:
        """Framelet-by-framelet generation with the KV cache (play's loop); returns the x0
        prediction of step ``grad_step`` per framelet (with gradients) or, for ``None``, the
        samples. ``noise`` b t 3 h w gives every framelet its starting noise."""
        b, t, _, h, w = cond.shape
        cache = model.new_cache(b, h, w)
        out = []
        for start in range(0, t, self.f):
            x, x0 = sample_framelet(
                model,
                noise[:, start : start + self.f],
                cond[:, start : start + self.f],
                cache,
                sigmas=sigmas,
                context_sigma=self.context_sigma,
                context_from_last_step=context_from_last_step,
                generator=generator,
                grad_step=grad_step,
            )
            out.append(x if grad_step is None else x0)
        return torch.cat(out, dim=1)

    def _score_sigmas(self, b: int, n: int, generator: torch.Generator, device) -> Tensor:
        low, high = self.dmd_sigma_range
        sigma = low + (high - low) * torch.rand(b, n, generator=generator)
        return time_shift(sigma, self.shift).to(device)

    # -- critics --

    def _critic_steps(
        self,
        generated: Tensor,
        cond: Tensor,
        batch: dict,
        sources: list[str],
        generator,
        critic_step: CriticStep,
    ) -> dict:
        logs: dict[str, float] = {}
        num_real = sum(source == REAL_VIDEO for source in sources)
        for _ in range(self.critic_steps):
            if self.fake_score is not None:
                with torch.enable_grad():
                    fake_loss, _ = self.fake_score_recipe(
                        self.fake_score, {"frames": generated, "cond": cond}, generator=generator
                    )
                critic_step("fake_score", fake_loss)
                logs["fake_score_loss"] = float(fake_loss.detach())
            if self.discriminator is not None and num_real > 0:
                images, labels = discriminator_batch(
                    real_frames=batch["frames"], real_sources=sources[:num_real], generated=generated
                )
                with torch.enable_grad():
                    logits = self.discriminator(images).flatten(1).mean(1)
                    # non-saturating GAN loss: softplus(-D(real)) + softplus(D(fake)), each side averaged
                    sign = labels * 2 - 1
                    per_image = F.softplus(-sign * logits.float())
                    d_loss = per_image[labels == 1].mean() + per_image[labels == 0].mean()
                critic_step("discriminator", d_loss)
                logs["discriminator_loss"] = float(d_loss.detach())
                logs["discriminator_real_accuracy"] = float((logits[labels == 1] > 0).float().mean())
                logs["discriminator_fake_accuracy"] = float((logits[labels == 0] < 0).float().mean())
        return logs

    # -- the step --

    def __call__(
        self, model, batch: dict, *, generator: torch.Generator, critic_step: CriticStep
    ) -> tuple[Tensor, dict[str, float]]:
        student = unwrap(model)
        frames, cond = batch["frames"], batch["cond"]  # b t 3 h w, b t C h w (real clips)
        b, t, _, h, w = frames.shape
        framelet_count(t, self.f)
        sources = [REAL_VIDEO] * b
        game = self.game_batch(self.game_clips_per_batch, generator) if self.game_clips_per_batch else None
        if game is not None:
            game = {key: value.to(cond.device) for key, value in game.items()}
            cond = torch.cat([cond, game["cond"].to(cond)])
            sources += [GAME] * game["cond"].shape[0]
        total = cond.shape[0]
        noise = randn_like_on((total, t, 3, h, w), generator=generator, like=cond)
        exit_step = int(torch.randint(len(self.sigmas) - 1, (1,), generator=generator))
        generated = self.rollout(
            student,
            cond,
            noise,
            sigmas=self.sigmas,
            context_from_last_step=self.context_from_last_step,
            generator=generator,
            grad_step=exit_step,
        )  # total t 3 h w, with gradients through the exit step's passes

        logs = self._critic_steps(generated.detach(), cond, batch, sources, generator, critic_step)
        terms = self._student_terms(generated, cond, noise, frames, game, generator=generator)
        loss = sum(self.weights[name] * value for name, value in terms.items())
        logs.update({f"{name}_loss": float(value.detach()) for name, value in terms.items()})
        return loss, logs

    def _student_terms(
        self, generated: Tensor, cond: Tensor, noise: Tensor, frames: Tensor, game: dict | None, *, generator
    ) -> dict[str, Tensor]:
        """The student's loss terms, unweighted, on its rollout ``generated`` (total t 3 h w: the
        real clips, then the game clips)."""
        b, t = frames.shape[:2]
        total = cond.shape[0]
        terms: dict[str, Tensor] = {}
        if self.weights["ode"] > 0:
            with torch.no_grad():
                target = self.rollout(
                    self.teacher,
                    cond,
                    noise,
                    sigmas=self.teacher_sigmas,
                    context_from_last_step=False,
                    generator=generator,
                    grad_step=None,
                )
            terms["ode"] = F.mse_loss(generated.float(), target.float())
        if self.weights["dmd"] > 0:
            sigma = self._score_sigmas(total, t // self.f, generator, cond.device)
            eps = randn_like_on(generated.shape, generator=generator, like=generated)
            x_noisy = add_noise(generated.detach(), eps, sigma)
            with torch.no_grad():
                teacher_x0 = self.teacher(x_noisy, cond, sigma).float()
                fake_x0 = self.fake_score(x_noisy, cond, sigma).float()
            terms["dmd"] = dmd_loss(generated, teacher_x0, fake_x0)
        if self.weights["real_x0"] > 0:
            terms["real_x0"] = F.mse_loss(generated[:b].float(), frames.float())
        if self.weights["perceptual"] > 0:  # beside real_x0: a perceptual distance to the real frames
            terms["perceptual"] = self.perceptual(generated[:b].float(), frames.float())
        if self.weights["temporal"] > 0 and game is not None and t > 1:
            reference = game["raster"] if self.temporal_reference == "raster" else target[b:]
            terms["temporal"] = temporal_loss(
                generated[b:].float(), reference.float(), game["flow_px"], game["valid_mask"]
            )
        if self.weights["gan"] > 0:
            self.discriminator.requires_grad_(False)
            logits = self.discriminator(generated.flatten(0, 1)).flatten(1).mean(1)
            self.discriminator.requires_grad_(True)
            terms["gan"] = F.softplus(-logits.float()).mean()
        return terms
