"""The picture of the game's street beside real city footage, for the README's game section.

    uv run python -m src.bench.city_picture --out game/city_street.png

Top row, the game (autopilot ride, seed 0): raster | flat colour (albedo) | depth | normals.
Bottom row, a PandaSet frame of ``city_street_pandaset002_front.mp4`` and what the real-video
extractors make of it: frame | flat colour | depth (relative inverse, the weight-free estimate) |
normals from that depth, as ``encode`` derives them.
"""

from __future__ import annotations

import argparse

import numpy as np

from src.bench.city_palette import DEFAULT_VIDEO
from src.common.video import save_png
from src.conditions.config import ExtractConfig
from src.conditions.extract import Extractor
from src.conditions.normals import normals_from_depth
from src.data.config import DecodeConfig
from src.data.decode import decode_video
from src.game.autopilot import Autopilot
from src.game.camera import rider_camera_pose
from src.game.config import CameraConfig
from src.game.meshes import build_scene
from src.game.raster import GBufferRaster
from src.game.visualize import colorize_depth, colorize_normals
from src.game.world import World

CELL = (320, 180)  # width, height of one picture cell (the PandaSet clip's 16:9)


def game_row(*, seed: int, steps: int) -> list[np.ndarray]:
    """raster | flat colour | depth | normals of the game after ``steps`` autopilot steps at 30 fps."""
    camera = CameraConfig()
    world, pilot = World(seed=seed), Autopilot()
    raster = GBufferRaster(*CELL, camera)
    prev = rider_camera_pose(world.state(), camera)
    for _ in range(steps):
        world.step(pilot(world), 1.0 / 30.0)
        pose = rider_camera_pose(world.state(), camera)
        gbuffer = raster.render(build_scene(world, pose, prev), pose.view_matrix(), prev.view_matrix())
        prev = pose
    raster.release()
    return [gbuffer.color, gbuffer.albedo, colorize_depth(gbuffer.depth), colorize_normals(gbuffer.normals)]


def real_row(video: str, *, frame_index: int) -> list[np.ndarray]:
    """frame | flat colour | depth | normals of one frame of ``video``, by the real-video extractors."""
    frames = decode_video(video, DecodeConfig(fps=10.0, resolution=f"{CELL[0]}x{CELL[1]}"))
    config = ExtractConfig()
    extractor = Extractor(config)
    extractor.fit(frames)
    pair = frames[frame_index - 1 : frame_index + 1]
    real = extractor.extract(pair)
    inverse = real["depth"][-1]
    normals = normals_from_depth(1.0 / np.maximum(inverse, 1e-3), fov_y_deg=config.assumed_fov_y_deg)
    return [
        pair[-1],
        real["albedo"][-1],
        colorize_depth(inverse, kind="inverse_relative"),
        colorize_normals(np.asarray(normals, np.float32)),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="city_picture", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="game/city_street.png")
    parser.add_argument("--video", default=DEFAULT_VIDEO)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--steps", type=int, default=450, help="autopilot steps (30 fps) before the game frame"
    )
    parser.add_argument("--frame", type=int, default=60, help="the real clip's frame (10 fps)")
    args = parser.parse_args(argv)
    rows = [game_row(seed=args.seed, steps=args.steps), real_row(args.video, frame_index=args.frame)]
    gap = 4
    picture = np.full((2 * CELL[1] + gap, 4 * CELL[0] + 3 * gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            y, x = r * (CELL[1] + gap), c * (CELL[0] + gap)
            picture[y : y + CELL[1], x : x + CELL[0]] = cell
    save_png(args.out, picture)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
