"""The per-frame play loop: world step -> scene -> G-buffer -> views -> window / recordings.

One loop serves the window, headless recording and benchmarks. Extra views plug in as *view
sources* (``ViewSource``, or a function ``(gbuffer, info) -> {name: h w 3 uint8}``), called once
per rendered frame, in order. Their names join the Tab cycle after the built-in views (color,
depth, flow, normals, semantic, albedo); ``--renderer NAME`` other than ``raster`` starts on the
view NAME. Views: ``src/game/views.py``; recordings: ``src/game/ride_outputs.py``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from src.common.config import load_config, to_dict
from src.common.errors import UserError
from src.common.frame_size import FrameSize
from src.common.gbuffer import GBuffer
from src.common.gbuffer_io import claim_clip_folder
from src.common.io import check_writable_dir, check_writable_file
from src.game.autopilot import Autopilot
from src.game.camera import Intrinsics, rider_camera_pose
from src.game.config import LEVELS_HINT, PlayConfig, WorldConfig
from src.game.display import GameWindow
from src.game.meshes import build_scene
from src.game.raster import GBufferRaster
from src.game.ride_outputs import RideOutputs
from src.game.version import game_digest
from src.game.views import BUILTIN_VIEWS, FrameInfo, ViewSource, as_view_source, view_image
from src.game.world import Action, World

DEFAULT_RESOLUTION = "320x240"


@dataclasses.dataclass
class SessionResult:
    frames: int
    runs: int
    score_m: float  # of the last run
    best_score_m: float
    world_ms: float  # mean per frame
    render_ms: float
    views_ms: float


def load_level(path: str | Path) -> WorldConfig:
    """A level file (YAML with WorldConfig's fields, no wrapper key) -> WorldConfig."""
    if not Path(path).is_file():
        raise UserError(f"level file not found: {path}", LEVELS_HINT)
    return load_config(WorldConfig, path)


class GameSession:
    """Owns the world, the renderer and the autopilot; ``frame(action)`` advances and renders."""

    def __init__(
        self,
        config: PlayConfig,
        *,
        view_sources: Sequence[ViewSource] = (),
        size: FrameSize | None = None,
        display_size: FrameSize | None = None,
    ):
        self.config = config
        self.size = size or play_frame_size(config)  # given: it replaces the one --resolution asks for
        self.width, self.height = self.size
        self.display_size = display_size or self.size  # the window's frame: a neural frame may be larger
        self.dt = 1.0 / config.fps
        self.view_sources = [as_view_source(source) for source in view_sources]
        self.world = World(config.world, seed=config.seed)
        self.autopilot = Autopilot(config.pilot)
        self.renderer = GBufferRaster(
            self.width, self.height, config.camera, fog_end_m=config.world.view_distance_m
        )
        self.runs = 1
        self.best_score_m = 0.0
        self.frame_index = 0
        self._new_run = True
        self._prev_pose = None
        self.timings = {"world": 0.0, "render": 0.0, "views": 0.0}

    @property
    def intrinsics(self) -> Intrinsics:
        return self.renderer.intrinsics

    def restart(self) -> None:
        """A new run with the next seed (deterministic: seed + run number)."""
        self.best_score_m = max(self.best_score_m, self.world.score_m)
        self.world.reset(self.config.seed + self.runs)
        self.autopilot.reset()
        self.runs += 1
        self._new_run = True
        for source in self.view_sources:
            source.reset()

    def frame(self, action: Action | None) -> tuple[GBuffer, FrameInfo, dict[str, np.ndarray]]:
        """Step the world (unless a run just started) and render; returns the G-buffer, its info
        and the views the sources added. ``action=None`` lets the autopilot ride."""
        start = time.perf_counter()
        new_run = self._new_run
        if not new_run:
            self.world.step(self.autopilot(self.world) if action is None else action, self.dt)
        state = self.world.state()
        pose = rider_camera_pose(state, self.config.camera)
        prev_pose = pose if new_run or self._prev_pose is None else self._prev_pose
        scene = build_scene(self.world, pose, prev_pose, show_handlebar=self.config.camera.show_handlebar)
        after_world = time.perf_counter()
        view = pose.view_matrix()
        gbuffer = self.renderer.render(scene, view, prev_pose.view_matrix())
        after_render = time.perf_counter()
        info = FrameInfo(self.frame_index, new_run, state, self.intrinsics, view)
        extra: dict[str, np.ndarray] = {}
        for source in self.view_sources:
            extra.update(source(gbuffer, info))
        self.timings["world"] += after_world - start
        self.timings["render"] += after_render - after_world
        self.timings["views"] += time.perf_counter() - after_render
        self._prev_pose = pose
        self._new_run = False
        self.frame_index += 1
        return gbuffer, info, extra

    def clip_meta(self) -> dict[str, Any]:
        intr = self.intrinsics
        return {
            "fps": self.config.fps,
            "resolution": [intr.width, intr.height],
            "fov_y_deg": intr.fov_y_deg,
            "near_m": intr.near_m,
            "far_m": intr.far_m,
            "seed": self.config.seed,
            "depth_kind": "metric",
            "source": "velodream game",
            "game_digest": game_digest(),  # which game made it (src/game/version.py)
            "renderer": "raster",
            "level": self.config.level,
            "world": to_dict(self.config.world),
            "camera": to_dict(self.config.camera),
        }

    def release(self) -> None:
        self.renderer.release()


def _hud_lines(session: GameSession, view_name: str, fps: float, paused: bool) -> list[str]:
    state = session.world.state()
    lines = [
        f"speed {state.speed_mps * 3.6:4.0f} km/h   score {state.score_m:6.0f} m   best {session.best_score_m:.0f} m",
        f"fps {fps:4.1f}   view {view_name} (Tab)" + ("   autopilot" if session.config.autopilot else ""),
    ]
    if paused:
        lines.append("paused (P)")
    return lines


def play_frame_size(config: PlayConfig) -> FrameSize:
    """The (width, height) ``--resolution`` asks for, or the default one."""
    return FrameSize.parse(config.resolution or DEFAULT_RESOLUTION)


def check_play_config(config: PlayConfig) -> FrameSize:
    """Fail with one line on settings that cannot work, before anything is built or opened.
    Returns the frame size ``--resolution`` asks for (or the default one)."""
    if config.headless and config.frames is None:
        raise UserError("--headless needs --frames N", "Say how many frames to render, e.g. --frames 300.")
    if config.frames is not None and config.frames <= 0:
        raise UserError(f"invalid --frames {config.frames}", "Give a positive number of frames.")
    if config.fps <= 0:
        raise UserError(
            f"invalid --fps {config.fps}", "Give a positive number of frames per second, e.g. 30."
        )
    if config.window_scale < 0:
        raise UserError(
            f"invalid --window_scale {config.window_scale}", "Give 0 (automatic) or a positive factor."
        )
    size = play_frame_size(config)
    if (
        config.record is not None
        and config.record_side_by_side is not None
        and Path(config.record).resolve() == Path(config.record_side_by_side).resolve()
    ):
        raise UserError(
            f"--record and --record_side_by_side are both {config.record}: one video would overwrite the other",
            "Give each its own file.",
        )
    return size


def run_session(
    config: PlayConfig,
    *,
    view_sources: Sequence[ViewSource] = (),
    window_factory=None,
    size: FrameSize | None = None,
    display_size: FrameSize | None = None,
) -> SessionResult:
    """Play (window) or render headless according to ``config``; see the module docstring.
    ``size`` (a neural ride's G-buffer size) replaces the one ``--resolution`` asks for;
    ``display_size`` (its frames', where larger) sizes the window."""
    asked = check_play_config(config)
    view_sources = [as_view_source(source) for source in view_sources]
    start_view, recordings = _check_views_and_outputs(config, view_sources)
    session = GameSession(config, view_sources=view_sources, size=size or asked, display_size=display_size)
    window = None
    outputs = RideOutputs(recordings, fps=config.fps, gbuffer_clip=config.record_gbuffers)
    try:
        if not config.headless:
            window = (window_factory or _default_window)(session)
        outputs.open_clip(session.clip_meta)
        loop = _LoopState()
        while config.frames is None or loop.rendered < config.frames:
            if window is not None and _handle_inputs(window, session, loop):
                break
            if session.world.game_over and (config.headless or config.autopilot):
                session.restart()
            if not loop.paused or loop.latest is None:
                _render_next(config, session, view_sources, loop, start_view=start_view, outputs=outputs)
            if window is not None:
                _show(config, window, session, view_sources, loop)
        outputs.close()
    finally:
        outputs.abort()
        if window is not None:
            window.close()
        session.release()
    return _result(session)


def _check_views_and_outputs(
    config: PlayConfig, view_sources: list[ViewSource]
) -> tuple[str, dict[str, str]]:
    """The view to start on and the recordings (path -> view name), after checking that the views
    asked for exist and that every output can be written."""
    declared = {name for source in view_sources for name in source.names or ()}
    undeclared = any(source.names is None for source in view_sources)
    start_view = "color" if config.renderer == "raster" else config.renderer
    if start_view not in BUILTIN_VIEWS and start_view not in declared and not undeclared:
        raise UserError(
            f"unknown renderer '{config.renderer}'",
            "Choose " + ", ".join(["raster", *sorted(declared)]) + ".",
        )
    record_view = config.record_view or start_view
    if config.record is not None and record_view not in (*BUILTIN_VIEWS, *declared) and not undeclared:
        raise UserError(
            f"unknown record_view '{record_view}'",
            "Choose one of: " + ", ".join([*BUILTIN_VIEWS, *sorted(declared)]) + ".",
        )
    if config.record_side_by_side is not None and "side_by_side" not in declared:
        raise UserError("--record_side_by_side needs the neural renderer", "Add --renderer neural.")
    recordings = {}
    if config.record is not None:
        recordings[config.record] = record_view
    if config.record_side_by_side is not None:
        recordings[config.record_side_by_side] = "side_by_side"
    for path in recordings:
        check_writable_file(path, what="video", suffixes=(".mp4", ".mkv", ".mov"))
    if config.record_gbuffers is not None:
        check_writable_dir(config.record_gbuffers, what="G-buffer clip")
        claim_clip_folder(config.record_gbuffers)  # before anything is rendered
    return start_view, recordings


@dataclasses.dataclass
class _LoopState:
    """What the play loop carries from frame to frame."""

    view_names: list[str] = dataclasses.field(default_factory=lambda: list(BUILTIN_VIEWS))
    view_index: int = 0
    paused: bool = False
    fps: float = 0.0
    rendered: int = 0
    latest: tuple[GBuffer, FrameInfo, dict] | None = None
    user_action: Action = dataclasses.field(default_factory=Action)


def _handle_inputs(window, session: GameSession, loop: _LoopState) -> bool:
    """Apply the window's keys (pause, restart, Tab) and keep the steering; True when it closes."""
    inputs = window.poll()
    if inputs.quit:
        return True
    loop.paused ^= inputs.toggle_pause
    if inputs.restart:
        session.restart()
        loop.paused = False
    if inputs.view_step:
        loop.view_index = (loop.view_index + inputs.view_step) % len(loop.view_names)
    loop.user_action = inputs.action
    return False


def _render_next(
    config: PlayConfig,
    session: GameSession,
    view_sources: list[ViewSource],
    loop: _LoopState,
    *,
    start_view: str,
    outputs: RideOutputs,
) -> None:
    """Step and render one frame, let the view sources add theirs, and record it."""
    shown = start_view if loop.rendered == 0 else loop.view_names[loop.view_index]
    for source in view_sources:
        source.select_views({shown, *outputs.recordings.values()})
    loop.latest = session.frame(None if config.autopilot else loop.user_action)
    gbuffer, info, extra = loop.latest
    for name in extra:
        if name not in loop.view_names:
            loop.view_names.append(name)
    if loop.rendered == 0 and start_view != "color":
        if start_view not in loop.view_names:
            raise UserError(f"unknown renderer '{config.renderer}'", "Choose raster.")
        loop.view_index = loop.view_names.index(start_view)
    loop.rendered += 1
    outputs.write(gbuffer, info, extra)


def _show(
    config: PlayConfig, window, session: GameSession, view_sources: list[ViewSource], loop: _LoopState
) -> None:
    """Draw the current view with the HUD (and the crash banner) and keep the frame rate."""
    gbuffer, info, extra = loop.latest
    name = loop.view_names[loop.view_index]
    banner = None
    if session.world.game_over or not session.world.alive:
        banner = f"CRASH  {session.world.score_m:.0f} m   R to ride again"
    hud = _hud_lines(session, name, loop.fps, loop.paused)
    for source in view_sources:
        hud += source.hud_lines()
    window.show(view_image(name, gbuffer, extra), hud, banner)
    loop.fps = window.tick(config.fps)


def _result(session: GameSession) -> SessionResult:
    n = max(1, session.frame_index)
    return SessionResult(
        frames=session.frame_index,
        runs=session.runs,
        score_m=session.world.score_m,
        best_score_m=max(session.best_score_m, session.world.score_m),
        world_ms=1e3 * session.timings["world"] / n,
        render_ms=1e3 * session.timings["render"] / n,
        views_ms=1e3 * session.timings["views"] / n,
    )


def _default_window(session: GameSession):
    width, height = session.display_size
    return GameWindow(width, height, scale=session.config.window_scale, fps=session.config.fps)
