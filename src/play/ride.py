"""Riding with neural graphics: the game loop plus the neural renderer as a view source.

``RideConfig`` extends the game's ``PlayConfig`` with the renderer options. With
``renderer="neural"`` the game renders its G-buffers at the model's own resolution (unless
``--resolution`` says otherwise), every G-buffer goes through the same ``encode`` as training,
and the package's renderer (the DiT, or any model behind ``src/runtime/renderer.py``) turns them
into frames:

- in a window, the model works in its own thread (``NeuralWorker``); the window shows the
  newest neural frame and the HUD its frame rate and latency;
- headless, every framelet is generated in order (``SyncNeuralSource``), so a recording holds
  every generated frame; the neural view lags the game by one frame (a framelet of 2 frames is
  generated once both G-buffers exist).

Views added: ``neural`` and ``side_by_side`` (neural | raster | depth G-buffer).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from src.common.errors import UserError
from src.common.gbuffer import GBuffer
from src.game.session import FrameInfo, PlayConfig, builtin_view
from src.play.checkpoints import resolve_checkpoint
from src.play.neural import NeuralRenderer, NeuralWorker
from src.runtime.backends import check_frame_size, make_renderer
from src.runtime.package import RendererPackage, load_package

DEFAULT_CHECKPOINT = "game/models/default"


@dataclasses.dataclass
class RideConfig(PlayConfig):
    """``play_game``: the game options plus the neural renderer's."""

    renderer: str = "neural"
    """neural (the DiT paints the frames) or raster (plain G-buffer colours)"""
    checkpoint: str = DEFAULT_CHECKPOINT
    """a package directory, hf://owner/repo[@rev] or https://...#sha256=..."""
    steps: int | None = None
    """denoising steps per framelet (default: the package's)"""
    backend: str = "torch"
    """torch or ncnn"""
    device: str = "cpu"
    """cpu, cuda (torch) / vulkan (ncnn), or auto"""
    dtype: str = "float32"
    """float32, bfloat16 or float16"""
    compile: bool = False
    """torch.compile the model (torch backend)"""
    cache_dir: str | None = None
    """where downloaded packages go (default ~/.cache/velodream)"""


def neural_frame_size(config: RideConfig, package: RendererPackage) -> tuple[int, int]:
    """(width, height) the game renders at for the model: its own, or --resolution."""
    from src.common.config import parse_resolution

    if config.resolution is None:
        return package.width, package.height
    width, height = parse_resolution(config.resolution)
    check_frame_size(package.model, width, height)
    return width, height


def side_by_side(neural: np.ndarray, gbuffer: GBuffer) -> np.ndarray:
    return np.concatenate([neural, gbuffer.color, builtin_view("depth", gbuffer)], axis=1)


class _NeuralSource:
    names = ("neural", "side_by_side")

    def __init__(self, renderer: NeuralRenderer):
        self.renderer = renderer
        self._blank: np.ndarray | None = None

    def _blank_like(self, gbuffer: GBuffer) -> np.ndarray:
        if self._blank is None or self._blank.shape[:2] != gbuffer.color.shape[:2]:
            self._blank = np.zeros_like(gbuffer.color)
        return self._blank

    def views(self, frame: np.ndarray, gbuffer: GBuffer) -> dict[str, np.ndarray]:
        return {"neural": frame, "side_by_side": side_by_side(frame, gbuffer)}


class SyncNeuralSource(_NeuralSource):
    """Generates every framelet in order (headless recording); the neural view lags one frame."""

    def __init__(self, renderer: NeuralRenderer):
        super().__init__(renderer)
        self._queue: list[np.ndarray] = []
        self._last: np.ndarray | None = None

    def reset(self) -> None:
        self.renderer.reset()
        self._queue.clear()
        self._last = None

    def __call__(self, gbuffer: GBuffer, info: FrameInfo) -> dict[str, np.ndarray]:
        frames = self.renderer.push(gbuffer)
        if frames is not None:
            self._queue.extend(frames)
        if self._queue:
            self._last = self._queue.pop(0)
        frame = self._last if self._last is not None else self._blank_like(gbuffer)
        return self.views(frame, gbuffer)

    def hud_lines(self) -> list[str]:
        times = self.renderer.times.summary()
        return [f"neural: model {times['model_ms']:.0f} ms / framelet"]


class ThreadedNeuralSource(_NeuralSource):
    """Hands G-buffers to a NeuralWorker thread; shows its newest frame (the window)."""

    def __init__(self, renderer: NeuralRenderer):
        super().__init__(renderer)
        self.worker = NeuralWorker(renderer)
        self.ride_id = 0

    def reset(self) -> None:
        self.ride_id += 1

    def __call__(self, gbuffer: GBuffer, info: FrameInfo) -> dict[str, np.ndarray]:
        if self.worker.error is not None:
            raise RuntimeError("the neural renderer thread failed") from self.worker.error
        self.worker.submit(gbuffer, self.ride_id)
        frame, _, _ = self.worker.latest()
        return self.views(frame if frame is not None else self._blank_like(gbuffer), gbuffer)

    def hud_lines(self) -> list[str]:
        _, latency_s, fps = self.worker.latest()
        return [f"neural {fps:4.1f} fps   latency {latency_s * 1e3:4.0f} ms"]

    def close(self) -> None:
        self.worker.close()


def build_neural_source(config: RideConfig) -> tuple[_NeuralSource, tuple[int, int]]:
    """Resolve and load the package, build the backend; returns the source and (width, height)."""
    package_dir = resolve_checkpoint(config.checkpoint, cache_dir=config.cache_dir)
    package = load_package(package_dir)
    width, height = neural_frame_size(config, package)
    renderer = make_renderer(
        package, backend=config.backend, width=width, height=height, num_denoising_steps=config.steps,
        device=config.device, dtype=config.dtype, compile=config.compile, seed=config.seed,
    )
    renderer = NeuralRenderer(package, renderer, fov_y_deg=config.camera.fov_y_deg)
    source = SyncNeuralSource(renderer) if config.headless else ThreadedNeuralSource(renderer)
    return source, (width, height)


def ride(config: RideConfig):
    """Run the game with the chosen renderer (see the module docstring)."""
    from src.game.session import run_session
    from src.play.checks import check_ride_config

    check_ride_config(config)
    if config.renderer == "raster":
        return run_session(config)
    if config.renderer != "neural":
        from src.game.session import BUILTIN_VIEWS

        if config.renderer in BUILTIN_VIEWS:
            return run_session(config)
        raise UserError(f"unknown renderer '{config.renderer}'", "Choose neural or raster.")
    source, (width, height) = build_neural_source(config)
    config = dataclasses.replace(config, resolution=f"{width}x{height}")
    try:
        return run_session(config, view_sources=[source])
    finally:
        if hasattr(source, "close"):
            source.close()
