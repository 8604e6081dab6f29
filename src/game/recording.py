"""Autopilot G-buffer clips: the one recorder that training, evaluation and scripts share.

``record_autopilot_clip`` renders a headless autopilot ride and writes its exact G-buffers in
the clip format of ``src.common.gbuffer_io`` (atomically: a clip folder either has its
``meta.json`` and every frame, or is not there). It runs the same loop as
``play_game --record_gbuffers DIR`` (``run_session``), so a clip recorded here and one recorded
from the command line with the same settings hold the same frames.
"""

from __future__ import annotations

import json
from pathlib import Path

from src.game.config import DEFAULT_LEVEL, PlayConfig
from src.game.session import load_level, run_session
from src.game.version import game_digest


def record_autopilot_clip(
    directory: str | Path,
    *,
    width: int,
    height: int,
    frames: int,
    seed: int,
    fps: float,
    level: str | None = None,
) -> Path:
    """Record ``frames`` autopilot frames at ``width``x``height`` into ``directory``; return it.
    The ride is on the ``level`` file's world (``game/levels/*.yaml``), or on the default world.

    First-frame rule (the game's own ``--record_gbuffers`` path): frame 0 is rendered before the
    world takes its first step, so it has ``new_run`` = 1 and no motion (flow 0 up to rounding);
    every later frame follows one world step of ``1 / fps`` seconds. When the autopilot crashes,
    the run restarts with the next seed and that frame is again marked ``new_run``.

    A complete clip already in ``directory`` with the same frames, size, seed, fps and level, recorded
    by the same game (``game_digest``: its code, shaders, levels and palette), is reused as it is. The metadata is the game's (``GameSession.clip_meta``: ``depth_kind`` "metric",
    ``fov_y_deg``, ``near_m``, ``far_m``, ``fps``, ``seed``, level, world and camera settings).
    Raises ``UserError`` for an unwritable folder and moderngl's errors where no OpenGL context
    can be made.
    """
    directory = Path(directory)
    level = level or DEFAULT_LEVEL
    world = load_level(level)  # refuses a missing level file first
    if _is_complete(directory, width=width, height=height, frames=frames, seed=seed, fps=fps, level=level):
        return directory
    config = PlayConfig(
        renderer="raster",
        headless=True,
        autopilot=True,
        frames=frames,
        seed=seed,
        resolution=f"{width}x{height}",
        fps=fps,
        record_gbuffers=str(directory),
        level=level,
        world=world,
    )
    run_session(config)
    return directory


def _is_complete(
    directory: Path, *, width: int, height: int, frames: int, seed: int, fps: float, level: str
) -> bool:
    meta_path = directory / "meta.json"  # written last: its presence means the clip is whole
    if not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (
        meta.get("num_frames") == frames
        and list(meta.get("resolution", [])) == [width, height]
        and meta.get("seed") == seed
        and meta.get("fps") == fps
        and meta.get("level") == level
        and meta.get("game_digest") == game_digest()  # recorded by today's game, not an older one
    )
