"""Ride the Velodream boulevard, or render and record it headless.

    uv run python -m src.scripts.play_game --renderer raster
    uv run python -m src.scripts.play_game --headless --autopilot --frames 300 --record out.mp4 \\
        --record_gbuffers out_gbuffers --resolution 320x240 --seed 3

World parameters come from ``--level FILE`` (default game/levels/default.yaml); ``--conf FILE``
and ``--world.KEY VALUE`` layer on top. Keys: arrows/WASD steer and pedal/brake, P pause,
R restart, Tab cycle views, Esc quit.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence

import yaml

from src.common.config import parse_config, to_dict
from src.common.errors import script_main
from src.game.session import DEFAULT_LEVEL, PlayConfig, load_level, run_session


def level_from_argv(argv: Sequence[str]) -> str:
    """The --level given on the command line (its last occurrence), else the default level."""
    level = DEFAULT_LEVEL
    for index, arg in enumerate(argv):
        if arg in ("--level", "--conf.level") and index + 1 < len(argv):
            level = argv[index + 1]
        elif arg.startswith(("--level=", "--conf.level=")):
            level = arg.split("=", 1)[1]
    return level


def parse_play_config(argv: Sequence[str]) -> PlayConfig:
    """The level file is the first layer (under ``world``), then --conf files and overrides."""
    argv = list(argv)
    world = load_level(level_from_argv(argv))
    with tempfile.NamedTemporaryFile("w", suffix=".level.yaml") as handle:
        yaml.safe_dump({"world": to_dict(world)}, handle)
        handle.flush()
        return parse_config(PlayConfig, ["--conf", handle.name, *argv], prog="play_game",
                            description="Ride the Velodream boulevard, or render and record it headless.")


@script_main
def main(argv: Sequence[str] | None = None) -> None:
    config = parse_play_config(sys.argv[1:] if argv is None else argv)
    result = run_session(config)
    if config.headless:
        print(f"rendered {result.frames} frames ({result.runs} run(s), last score {result.score_m:.0f} m); "
              f"world {result.world_ms:.2f} ms, G-buffer {result.render_ms:.2f} ms per frame")
        if config.record:
            print(f"video: {config.record}")
        if config.record_gbuffers:
            print(f"G-buffer clip: {config.record_gbuffers}")


if __name__ == "__main__":
    main()
