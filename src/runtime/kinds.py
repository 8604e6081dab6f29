"""The one table of model kinds: what serves each ``renderer_kind`` a model class declares.

A model class says its kind (``renderer_kind`` in ``src/net/models.py``); ``MODEL_KINDS`` maps
that word to the pieces that serve it, so nothing else picks them by an ``if`` on the word:

- ``renderer``: builds the ``src/runtime/renderer.py`` renderer over a runner (the torch model
  itself, or its exported-step runner) -- ``DiffusionRenderer``, ``DirectRenderer`` or ``RecurrentRenderer``;
- ``export_step``: the graph the model is exported to ncnn and ONNX as, for one frame size
  (``src/net/export_step.py``), and ``export_name``, the file name of that export;
- ``step_runner``: the exported graph behind the torch model's methods (``src/runtime/step_runners.py``).

A new kind is one new row here (and its classes in those rooms).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from torch import nn

from src.common.errors import UserError
from src.net.export_step import DirectStep, FrameletStep, RecurrentStep
from src.runtime.defaults import SamplingDefaults
from src.runtime.renderer import DiffusionRenderer, DirectRenderer, RecurrentRenderer, Renderer
from src.runtime.step_runners import StepDenoiser, StepDirect, StepNet, StepRecurrent


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """The pieces that serve one kind of renderer model."""

    name: str
    # (model, runner, backend=, sampling=, num_denoising_steps=, base=) -> the renderer over runner
    renderer: Callable[..., Renderer]
    export_step: Callable[[nn.Module, int, int], nn.Module]  # (model, h, w) -> the graph pnnx traces
    export_name: str  # the export's file stem inside the package's ncnn/ and onnx/ <w>x<h>/ folders
    step_runner: Callable[[StepNet, dict, nn.Module], object]  # (net, the export's shapes JSON, model)
    sigma_input: int | None = None  # the step input holding the noise level (traced at 0.5), if any


def _detail_band(model, sampling: SamplingDefaults) -> dict:
    """The renderer's albedo detail band (``src/runtime/renderer.py``): ``sampling.albedo_detail``
    on the model's albedo planes at the scale below which its frames lack detail (``detail_band``;
    a model without one gets none)."""
    channels, scale = getattr(model, "detail_band", (None, 1))
    return {"albedo_detail": sampling.albedo_detail, "albedo_channels": channels, "detail_scale": scale}


def _diffusion_renderer(
    model, runner, *, backend: str, sampling: SamplingDefaults, num_denoising_steps: int | None, base: dict
) -> Renderer:
    steps = sampling.num_denoising_steps if num_denoising_steps is None else num_denoising_steps
    if steps < 1:
        raise UserError(f"the number of denoising steps must be at least 1, got {steps}")
    return DiffusionRenderer(
        runner,
        num_denoising_steps=steps,
        shift=1.0 if sampling.shift is None else sampling.shift,
        context_sigma=sampling.context_sigma,
        context_from_last_step=sampling.context_from_last_step,
        backend=backend,
        **_detail_band(model, sampling),
        **base,
    )


def _direct_renderer(model, runner, *, backend: str, base: dict, **_) -> Renderer:
    return DirectRenderer(runner.forward_frames, backend=backend, **base)


def _recurrent_renderer(
    model, runner, *, backend: str, sampling: SamplingDefaults, base: dict, **_
) -> Renderer:
    return RecurrentRenderer(
        runner, backend=backend, upscale=model.upscale, **_detail_band(model, sampling), **base
    )


MODEL_KINDS: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        ModelKind(
            name="diffusion",
            renderer=_diffusion_renderer,
            export_step=FrameletStep,
            export_name="framelet_step",
            step_runner=lambda net, shapes, model: StepDenoiser(
                net, shapes, frames_per_framelet=model.frames_per_step
            ),
            sigma_input=2,
        ),
        ModelKind(
            name="direct",
            renderer=_direct_renderer,
            export_step=DirectStep,
            export_name="direct_step",
            step_runner=lambda net, shapes, model: StepDirect(net),
        ),
        ModelKind(
            name="recurrent",
            renderer=_recurrent_renderer,
            export_step=RecurrentStep,
            export_name="recurrent_step",
            step_runner=lambda net, shapes, model: StepRecurrent(
                net, shapes, initial_recurrence=model.initial_recurrence
            ),
        ),
    )
}


def model_kind(model_or_name) -> ModelKind:
    """The row of a model (by its ``renderer_kind``) or of a kind's name; a UserError for an unknown kind."""
    name = model_or_name if isinstance(model_or_name, str) else model_or_name.renderer_kind
    try:
        return MODEL_KINDS[name]
    except KeyError:
        raise UserError(
            f"no renderer for model kind {name!r}", f"Known kinds: {', '.join(MODEL_KINDS)}."
        ) from None
