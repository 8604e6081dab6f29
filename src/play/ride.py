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
import sys
from collections.abc import Callable, Mapping

import numpy as np

from src.common.errors import UserError
from src.common.frame_size import FrameSize
from src.common.gbuffer import GBuffer
from src.game.display import require_visible_display
from src.game.session import check_play_config, run_session
from src.game.views import BUILTIN_VIEWS, FrameInfo, ViewSource, builtin_view
from src.play.config import RideConfig
from src.play.fetch import resolve_checkpoint
from src.runtime.package import RendererPackage, load_package, renderer_names


def neural_frame_size(config: RideConfig, package: RendererPackage) -> FrameSize:
    """(width, height) the game renders at for the model: its own, or --resolution."""
    from src.runtime.backends import check_frame_size  # the backends import torch: not at start-up

    if config.resolution is None and package.play_resolution is None:
        return FrameSize(package.width, package.height)
    size = FrameSize.parse(config.resolution or package.play_resolution)
    check_frame_size(package.model, size.width, size.height)
    return size


def side_by_side(frames: list[np.ndarray], gbuffer: GBuffer) -> np.ndarray:
    """Every renderer's frame, then the raster colour and the depth G-buffer, left to right (G-buffers
    smaller than the frames, rendered at the size the model reads, repeated up to their height)."""
    views = [gbuffer.color, builtin_view("depth", gbuffer)]
    factor = frames[0].shape[0] // views[0].shape[0] if frames else 1
    if factor > 1:
        views = [view.repeat(factor, axis=0).repeat(factor, axis=1) for view in views]
    return np.concatenate([*frames, *views], axis=1)


class LazyRenderers(Mapping):
    """View name -> renderer, each built (backend, export) the first time it is asked for: a
    bundle member that never comes on screen costs nothing."""

    def __init__(self, names: list[str], build: Callable[[str], object]):
        self._names, self._build, self._built = list(names), build, {}

    def __getitem__(self, name: str):
        if name not in self._names:
            raise KeyError(name)
        if name not in self._built:
            self._built[name] = self._build(name)
        return self._built[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def built(self) -> list[str]:
        return list(self._built)


def _built(renderers) -> list[str]:
    """The renderers built so far (all of a plain dict)."""
    return renderers.built() if isinstance(renderers, LazyRenderers) else list(renderers)


class _NeuralSource(ViewSource):
    """Views named after the package's renderers (``neural`` for a plain package; ``student``,
    ``dit``, ... for a bundle) and ``side_by_side`` (every renderer | raster | depth).
    ``renderers`` maps view names to ``src.play.neural.NeuralRenderer`` (not imported here: it
    imports torch, and jsonargparse would run a TYPE_CHECKING import while reading RideConfig).

    Only the renderers whose views are on screen or recorded run (the session calls
    ``select_views`` before each frame); a renderer that comes back on screen starts a fresh
    context, since the frames it missed would make its history wrong."""

    def __init__(self, renderers: dict[str, object], frame_size: FrameSize | None = None):
        self.renderers = renderers
        self.frame_size = frame_size  # the neural frames' (None: the G-buffer's)
        self.names = (*renderers, "side_by_side")
        self.active = set(renderers)
        self._last: dict[str, np.ndarray | None] = dict.fromkeys(renderers)
        self._blank: np.ndarray | None = None

    def select_views(self, views: set[str]) -> None:
        wanted = set(self.renderers) if "side_by_side" in views else {v for v in views if v in self.renderers}
        for name in wanted - self.active:
            self._restart(name)
        self.active = wanted

    def _restart(self, name: str) -> None:
        raise NotImplementedError

    def _blank_like(self, gbuffer: GBuffer) -> np.ndarray:
        """Black at the neural frames' size (a renderer with no frame yet)."""
        shape = gbuffer.color.shape if self.frame_size is None else (*self.frame_size[::-1], 3)
        if self._blank is None or self._blank.shape != shape:
            self._blank = np.zeros(shape, np.uint8)
        return self._blank

    def views(self, gbuffer: GBuffer) -> dict[str, np.ndarray]:
        frames = {
            name: frame if frame is not None else self._blank_like(gbuffer)
            for name, frame in self._last.items()
        }
        return {**frames, "side_by_side": side_by_side(list(frames.values()), gbuffer)}


class SyncNeuralSource(_NeuralSource):
    """Generates every step in order (headless recording); a DiT's view lags one frame."""

    def __init__(self, renderers: dict[str, object], frame_size: FrameSize | None = None):
        super().__init__(renderers, frame_size)
        self._queues: dict[str, list[np.ndarray]] = {name: [] for name in renderers}

    def _restart(self, name: str) -> None:
        self.renderers[name].reset()
        self._queues[name].clear()
        self._last[name] = None

    def reset(self) -> None:
        for name in self.renderers:
            if name in _built(self.renderers):
                self._restart(name)
            else:
                self._queues[name].clear()
                self._last[name] = None

    def __call__(self, gbuffer: GBuffer, info: FrameInfo) -> dict[str, np.ndarray]:
        for name in self.active:
            frames = self.renderers[name].push(gbuffer)
            if frames is not None:
                self._queues[name].extend(frames)
            if self._queues[name]:
                self._last[name] = self._queues[name].pop(0)
        return self.views(gbuffer)

    def hud_lines(self) -> list[str]:
        return [
            f"{name}: model {self.renderers[name].times.summary()['model_ms']:.0f} ms / step"
            for name in sorted(self.active)
        ]


class ThreadedNeuralSource(_NeuralSource):
    """Hands G-buffers to one NeuralWorker thread per running renderer; shows their newest frames
    (the window)."""

    def __init__(self, renderers: dict[str, object], frame_size: FrameSize | None = None):
        super().__init__(renderers, frame_size)
        self.workers = LazyRenderers(list(renderers), self._start_worker)  # a thread once it runs
        self.ride_ids = dict.fromkeys(renderers, 0)

    def _start_worker(self, name: str):
        from src.play.neural import NeuralWorker  # imports torch: loaded once a model plays

        return NeuralWorker(self.renderers[name])

    def _restart(self, name: str) -> None:
        self.ride_ids[name] += 1  # the worker resets before its next step

    def reset(self) -> None:
        for name in self.renderers:
            self._restart(name)

    def __call__(self, gbuffer: GBuffer, info: FrameInfo) -> dict[str, np.ndarray]:
        for name in self.active:
            worker = self.workers[name]
            if worker.error is not None:
                raise RuntimeError(f"the {name} renderer thread failed") from worker.error
            worker.submit(gbuffer, self.ride_ids[name])
            frame, _, _ = worker.latest()
            if frame is not None:
                self._last[name] = frame
        return self.views(gbuffer)

    def hud_lines(self) -> list[str]:
        lines = []
        for name in sorted(self.active):
            _, latency_s, fps = self.workers[name].latest()
            lines.append(f"{name} {fps:4.1f} fps   latency {latency_s * 1e3:4.0f} ms")
        return lines

    def close(self) -> None:
        for name in self.workers.built():
            self.workers[name].close()


def renderers_that_run(config: RideConfig, names: list[str]) -> tuple[set[str], set[str]]:
    """(the renderers that must run, the ones that may run) of a package whose renderers are
    ``names`` (its default first). Must: the starting view and the recorded ones. May: in a window
    every renderer (Tab shows each), headless nothing more."""
    start = names[0] if config.renderer == "neural" else config.renderer
    views = {start, config.record_view or start}
    if config.record_side_by_side or "side_by_side" in views:
        views |= set(names)
    must = {name for name in names if name in views}
    return must, (set(names) if not config.headless else must)


def load_renderers(config: RideConfig) -> tuple[dict[str, RendererPackage], FrameSize]:
    """The renderers of the package (one, called ``neural``, for a plain package; a bundle's by
    their names, its default first) and the (width, height) the game renders at for them. Only the
    renderers that run are checked against that size: one that must run (shown at the start, or
    recorded) and cannot is an error that names it; any other that cannot is left out of the views
    (with a note in a window, where Tab would show it)."""
    from src.runtime.backends import check_frame_size  # the backends import torch: not at start-up

    package_dir = resolve_checkpoint(config.checkpoint, cache_dir=config.cache_dir)
    names = renderer_names(package_dir) or ["neural"]
    if config.renderer not in ("neural", "side_by_side", *names):
        raise UserError(
            f"unknown renderer '{config.renderer}'",
            "Choose " + ", ".join(["raster", "neural", *[n for n in names if n != "neural"]]) + ".",
        )
    must, may = renderers_that_run(config, names)
    packages = {
        name: load_package(package_dir, renderer=None if name == "neural" else name) for name in names
    }
    first = next(name for name in names if name in must)
    try:
        size = neural_frame_size(config, packages[first])
    except UserError as error:
        raise UserError(f"renderer {first}: {error.message}", error.hint) from None
    for name in names:
        try:
            check_frame_size(packages[name].model, size.width, size.height)
        except UserError as error:
            if name in must:
                raise UserError(f"renderer {name}: {error.message}", error.hint) from None
            del packages[name]
            if name in may:
                print(
                    f"note: renderer {name} is left out of the views: it cannot render "
                    f"{error.message.removeprefix('the model cannot render ')}"
                    f" ({(error.hint or '').rstrip('.').replace('It takes', 'it takes')})",
                    file=sys.stderr,
                    flush=True,
                )
    return packages, size


def check_steps_apply(steps: int | None, packages: dict[str, RendererPackage]) -> None:
    """``--steps`` sets the denoising steps of diffusion renderers; a one-pass renderer (the student,
    the flat-colour baseline) has none. Refuse it when no renderer would use it; say once which
    ones ignore it when some would."""
    if steps is None:
        return
    one_pass = [name for name, package in packages.items() if package.model.renderer_kind != "diffusion"]
    if len(one_pass) == len(packages):
        raise UserError(
            f"--steps {steps} has no effect: renderer {', '.join(one_pass)} makes one pass per frame, "
            "with no denoising steps",
            "Leave out --steps, or play a diffusion renderer (a DiT package, or --renderer dit of the bundle).",
        )
    if one_pass:
        used = [name for name in packages if name not in one_pass]
        print(
            f"note: --steps {steps} applies to {', '.join(used)}; {', '.join(one_pass)} makes one pass "
            "per frame",
            file=sys.stderr,
            flush=True,
        )


def build_neural_source(config: RideConfig) -> tuple[_NeuralSource, FrameSize, FrameSize]:
    """Resolve and load the package, build a backend per renderer; returns the source, the
    neural frames' (width, height) and the G-buffers' (``config.gbuffer_size``)."""
    # the renderers and backends import torch (seconds): loaded here, so --help and the checks
    # before a model loads answer at once
    from src.runtime.threads import quiet_thread_pools, runtime_threads

    quiet_thread_pools()  # before torch and ncnn start their OpenMP runtimes
    from src.play.neural import NeuralRenderer
    from src.runtime.backends import make_renderer

    packages, size = load_renderers(config)
    check_steps_apply(config.steps, packages)

    def build(name: str):
        package = packages[name]
        return NeuralRenderer(
            package,
            make_renderer(
                package,
                backend=config.backend,
                width=size.width,
                height=size.height,
                num_denoising_steps=config.steps,
                device=config.device,
                dtype=config.dtype,
                compile=config.compile,
                seed=config.seed,
                threads=runtime_threads(config.threads),
            ),
            fov_y_deg=config.camera.fov_y_deg,
        )

    renderers = LazyRenderers(list(packages), build)  # each built when its view first runs
    for name in renderers_that_run(config, list(packages))[0]:
        renderers[name]  # the views shown or recorded from the start: built now, so errors come first
    gbuffer_size = size
    if config.gbuffer_size == "renderer" and len(packages) == 1:
        gbuffer_size = FrameSize(*renderers[next(iter(packages))].renderer.gbuffer_size)
    source_kind = SyncNeuralSource if config.headless else ThreadedNeuralSource
    return source_kind(renderers, size), size, gbuffer_size


def check_ride_config(config: RideConfig) -> None:
    """Raise a UserError for settings of ``play_game`` that cannot work, before a model is loaded
    or a window opened: a zero frame rate, a negative frame count, no denoising steps, a
    resolution that is not WIDTHxHEIGHT, or a window asked for where no display can show it.
    Checks that need the model (a resolution that is not a multiple of its patch or beyond its
    grid) run once the package is loaded (``neural_frame_size``)."""
    check_play_config(config)
    if config.steps is not None and config.steps < 1:
        raise UserError(f"invalid --steps {config.steps}", "Give at least 1 denoising step per framelet.")
    if not config.headless:
        require_visible_display()


def ride(config: RideConfig):
    """Run the game with the chosen renderer (see the module docstring)."""
    check_ride_config(config)
    if config.renderer == "raster":
        return run_session(config)
    if config.renderer in BUILTIN_VIEWS:
        return run_session(config)
    source, size, gbuffer_size = build_neural_source(config)
    start = source.names[0] if config.renderer == "neural" else config.renderer
    if start not in source.names:
        source.close()
        raise UserError(
            f"unknown renderer '{config.renderer}'",
            "Choose " + ", ".join(["raster", "neural", *[n for n in source.names if n != "neural"]]) + ".",
        )
    config = dataclasses.replace(config, renderer=start)
    try:
        return run_session(config, view_sources=[source], size=gbuffer_size, display_size=size)
    finally:
        source.close()
