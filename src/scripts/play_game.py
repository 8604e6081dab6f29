"""Ride the Velodream city street, rendered by the bundled neural model or as plain raster.

    uv run python -m src.scripts.play_game                       # neural graphics, bundled model
    uv run python -m src.scripts.play_game --renderer raster     # the plain G-buffer game
    uv run python -m src.scripts.play_game --checkpoint hf://owner/repo
    uv run python -m src.scripts.play_game --headless --autopilot --frames 240 --record ride.mp4 \\
        --record_side_by_side ride_sbs.mp4
    uv run python -m src.scripts.play_game --renderer raster --headless --autopilot --frames 300 \\
        --record out.mp4 --record_gbuffers out_gbuffers --resolution 320x240 --seed 3

World parameters come from ``--level FILE`` (default game/levels/default.yaml); ``--conf FILE``
and ``--world.KEY VALUE`` layer on top. Keys: arrows/WASD steer and pedal/brake, P pause,
R restart, Tab cycle views, Esc quit.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from src.common.config import parse_config, to_dict
from src.common.errors import script_main
from src.game.session import load_level
from src.play.config import RideConfig
from src.play.ride import ride


def parse_play_config(argv: Sequence[str]) -> RideConfig:
    """The level file (``--level``) is the first layer, under ``world``; then --conf files and overrides."""
    return parse_config(
        RideConfig,
        argv,
        prog="play_game",
        description="Ride the Velodream city street, or render and record it headless.",
        base_layers=[lambda config: {"world": to_dict(load_level(config.level))}],
    )


@script_main
def main(argv: Sequence[str] | None = None) -> None:
    config = parse_play_config(sys.argv[1:] if argv is None else argv)
    result = ride(config)
    if config.headless:
        print(
            f"rendered {result.frames} frames ({result.runs} run(s), last score {result.score_m:.0f} m); "
            f"world {result.world_ms:.2f} ms, G-buffer {result.render_ms:.2f} ms per frame"
        )
        if config.record:
            print(f"video: {config.record}")
        if config.record_side_by_side:
            print(f"side-by-side video: {config.record_side_by_side}")
        if config.record_gbuffers:
            print(f"G-buffer clip: {config.record_gbuffers}")


if __name__ == "__main__":
    main()
