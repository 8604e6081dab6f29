"""The renderer interface: what play, the benchmark, validation, ``evaluate`` and export see.

Every model that turns encoded conditions into frames -- the DiT, a distilled DiT, a student,
the flat-colour baseline -- runs behind this, in torch or in ncnn:

    renderer.reset(seed=None)          forget the context or state (a new ride; reseed if given)
    renderer.step(cond) -> frames      cond f C h w float32 (encoded) -> frames f 3 h w in [-1, 1]
    renderer.prepare(cond) -> inputs   what step does before the network (a pipeline's caller runs it)
    renderer.step_prepared(*inputs)    the rest of step: step(cond) = step_prepared(*prepare(cond))
    renderer.frames_per_step           f: frames one step takes and renders
    renderer.passes_per_step           network evaluations one step costs
    renderer.native_size               (width, height) the model was trained at
    renderer.frame_size                (width, height) it renders now
    renderer.gbuffer_size              (width, height) of the G-buffers it makes full use of
    renderer.backend                   "torch" or "ncnn"

Three implementations cover the model kinds (``renderer_kind`` in ``src/net/models.py``):
``DiffusionRenderer`` drives any ``CachedDenoiser`` (torch DiT or ``StepDenoiser``) with the one
rollout of ``src/diffusion/rollout.py``; ``DirectRenderer`` calls a one-pass step function;
``RecurrentRenderer`` calls a one-pass step per frame and threads its feedback and state (the
student, torch or ``StepRecurrent``).

A model may render frames larger than its conditions (the student's ``upscale``): its renderer
has a ``condition_size`` below ``frame_size`` and takes conditions at either size, averaging
ones at the frame size down (``downsample_encoded``), so callers that encode at the frame size
work unchanged and a caller that encodes at ``condition_size`` saves the work. ``gbuffer_size``
says which a game should render: the condition size, unless the renderer reads detail at the
frame size (the albedo detail band).

The albedo detail band (``sampling.albedo_detail``, any renderer): a model whose output lacks
the detail finer than ``detail_scale`` pixels -- the student, which renders from conditions at
1/``upscale`` size, or a DiT whose smooth decoder runs at 1/``decoder_scale`` -- gets that band
of the full-size albedo added back after the network: the albedo less its area average at
1/``detail_scale`` size, scaled back up bilinearly, times ``albedo_detail``. It is outside the
network, so torch, ncnn and ONNX all get it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from src.common.framelets import framelet_count
from src.conditions.encode import downsample_encoded
from src.diffusion.flow_matching import make_sigmas
from src.diffusion.rollout import CachedDenoiser, rollout_framelets


class Renderer(Protocol):
    backend: str
    frames_per_step: int
    passes_per_step: int
    native_size: tuple[int, int]
    frame_size: tuple[int, int]
    gbuffer_size: tuple[int, int]

    def reset(self, seed: int | None = None) -> None: ...

    def step(self, cond: np.ndarray | Tensor) -> np.ndarray: ...

    def prepare(self, cond: np.ndarray | Tensor) -> tuple[Tensor, Tensor | None]: ...

    def step_prepared(self, cond: Tensor, extra: Tensor | None) -> np.ndarray: ...


class _RendererBase:
    def __init__(
        self,
        *,
        backend: str,
        frames_per_step: int,
        native_size,
        frame_size,
        device,
        dtype,
        seed: int,
        upscale: int = 1,
        albedo_detail: float = 0.0,
        albedo_channels: list[int] | None = None,
        detail_scale: int | None = None,
    ):
        self.backend = backend
        self.frames_per_step = frames_per_step
        self.native_size = tuple(native_size)
        self.frame_size = tuple(frame_size)
        self.upscale = upscale
        self.condition_size = (self.frame_size[0] // upscale, self.frame_size[1] // upscale)
        self.device, self.dtype = torch.device(device), dtype
        self.seed = seed
        self.detail_scale = detail_scale or upscale
        self.albedo_detail = albedo_detail if albedo_channels is not None and self.detail_scale > 1 else 0.0
        self.albedo_channels = list(albedo_channels or [])

    @property
    def gbuffer_size(self) -> tuple[int, int]:
        """(width, height) of the G-buffers this renderer makes full use of: the frame size where
        it adds the albedo's detail band (which only full-size albedo has), else the condition
        size (larger ones are averaged down to it)."""
        return self.frame_size if self.albedo_detail else self.condition_size

    def step(self, cond: np.ndarray | Tensor) -> np.ndarray:
        return self.step_prepared(*self.prepare(cond))

    def prepare(self, cond: np.ndarray | Tensor) -> tuple[Tensor, Tensor | None]:
        """What a step does before the network: the conditions checked, sized and moved
        (``_condition``: ``1 f C h w``), and the full-size albedo's detail band it adds after the
        network (or None)."""
        return self._condition(cond), self._albedo_detail(cond)

    def _albedo_detail(self, cond: np.ndarray | Tensor) -> Tensor | None:
        """``f 3 H W``: the full-size albedo less its area average at 1/``detail_scale`` size
        scaled back up bilinearly (what the model's own albedo base keeps of it); None where the
        band is off or the conditions come below the frame size (no detail to add)."""
        cond = torch.as_tensor(cond)
        if not self.albedo_detail or cond.ndim != 4 or tuple(cond.shape[2:]) != self.frame_size[::-1]:
            return None
        albedo = cond[:, self.albedo_channels].float().cpu()
        base = torch.nn.functional.interpolate(
            downsample_encoded(albedo, self.detail_scale),
            scale_factor=self.detail_scale,
            mode="bilinear",
            align_corners=False,
        )
        return albedo - base

    def _finish(self, frames: Tensor, detail: Tensor | None) -> np.ndarray:
        """``f 3 H W`` frames from the network, with the detail band added, clamped, as numpy."""
        frames = frames.float().cpu()
        if detail is not None:
            frames = frames + self.albedo_detail * detail
        return frames.clamp(-1, 1).numpy()

    def _condition(self, cond: np.ndarray | Tensor) -> Tensor:
        """``f C h w`` -> ``1 f C h w`` on the model's device and dtype, with its shape checked
        (conditions at the frame size are averaged down to the condition size)."""
        cond = torch.as_tensor(cond)
        width, height = self.condition_size
        if cond.ndim == 4 and self.upscale > 1 and tuple(cond.shape[2:]) == self.frame_size[::-1]:
            cond = downsample_encoded(cond.float(), self.upscale)
        if (
            cond.ndim != 4
            or cond.shape[0] != self.frames_per_step
            or tuple(cond.shape[2:]) != (height, width)
        ):
            raise ValueError(
                f"a step takes {self.frames_per_step} frames of conditions at {width}x{height} (f C h w), "
                f"got shape {tuple(cond.shape)}"
            )
        return cond.to(device=self.device, dtype=self.dtype)[None]


class DiffusionRenderer(_RendererBase):
    """Samples each framelet with Euler steps and keeps the context cache between steps
    (by a context pass, or from the last denoising pass with ``context_from_last_step``)."""

    def __init__(
        self,
        denoiser: CachedDenoiser,
        *,
        num_denoising_steps: int,
        shift: float,
        context_sigma: float,
        context_from_last_step: bool = False,
        **base,
    ):
        super().__init__(**base)
        self.denoiser = denoiser
        self.sigmas = make_sigmas(num_denoising_steps, shift, device=self.device)
        self.context_sigma = context_sigma
        self.context_from_last_step = context_from_last_step
        # the denoising steps, plus the context pass unless the last step's keys/values are kept
        self.passes_per_step = num_denoising_steps + (0 if context_from_last_step else 1)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.seed = self.seed if seed is None else seed
        width, height = self.frame_size
        self.cache = self.denoiser.new_cache(1, height, width)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)

    @torch.no_grad()
    def step_prepared(self, cond: Tensor, detail: Tensor | None = None) -> np.ndarray:
        frames = rollout_framelets(
            self.denoiser,
            cond,
            frames_per_framelet=self.frames_per_step,
            sigmas=self.sigmas,
            context_sigma=self.context_sigma,
            context_from_last_step=self.context_from_last_step,
            generator=self.generator,
            cache=self.cache,
        )
        return self._finish(frames[0], detail)


class DirectRenderer(_RendererBase):
    """One network evaluation per step: ``step_fn(cf 1 (f C) h w) -> 1 (f 3) h w``; no state."""

    passes_per_step = 1

    def __init__(self, step_fn: Callable[[Tensor], Tensor], **base):
        super().__init__(**base)
        self.step_fn = step_fn

    def reset(self, seed: int | None = None) -> None:
        self.seed = self.seed if seed is None else seed

    @torch.no_grad()
    def step_prepared(self, cond: Tensor, detail: Tensor | None = None) -> np.ndarray:
        f, _, h, w = cond.shape[1:]
        frames = self.step_fn(cond.reshape(1, -1, h, w))
        return self._finish(frames.reshape(f, 3, h, w), detail)


class RecurrentRenderer(_RendererBase):
    """One network evaluation per frame with state carried between frames:
    ``runner.forward_step(cond 1 C h w, feedback, state) -> (frame 1 3 H W, feedback, state)`` and
    ``runner.initial_recurrence(1, H, W)`` for a new ride (the torch student or ``StepRecurrent``)."""

    passes_per_step = 1

    def __init__(self, runner, **base):
        super().__init__(**base)
        self.runner = runner
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.seed = self.seed if seed is None else seed
        width, height = self.frame_size
        self.feedback, self.state = self.runner.initial_recurrence(
            1, height, width, device=self.device, dtype=self.dtype
        )

    @torch.no_grad()
    def step_prepared(self, cond: Tensor, detail: Tensor | None = None) -> np.ndarray:
        cond = cond[0]  # f C h w
        frames = []
        for i in range(cond.shape[0]):
            frame, self.feedback, self.state = self.runner.forward_step(
                cond[i : i + 1], self.feedback, self.state
            )
            frames.append(frame)
        return self._finish(torch.cat(frames), detail)


def render_clip(renderer: Renderer, cond: np.ndarray | Tensor, *, seed: int | None = None) -> np.ndarray:
    """Render a whole clip ``t C h w`` (t a multiple of ``frames_per_step``) from a fresh context:
    ``t 3 h w`` in [-1, 1]."""
    cond = torch.as_tensor(cond)
    f = renderer.frames_per_step
    framelet_count(cond.shape[0], f, whose="the renderer's")
    renderer.reset(seed)
    return np.concatenate([renderer.step(cond[i : i + f]) for i in range(0, cond.shape[0], f)])
