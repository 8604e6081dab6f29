"""Benchmark of the game side of a frame: world step, scene build, G-buffer render + readback.

Headless (EGL), autopilot riding, fixed dt; one renderer per resolution. Prints a table of
milliseconds per frame (median and mean) and writes the numbers as JSON.
"""

from __future__ import annotations

import dataclasses
import platform
import time

import numpy as np

from src.bench.config import BenchGameConfig
from src.common.config import parse_resolution
from src.common.io import report_table_and_json
from src.game.autopilot import Autopilot
from src.game.camera import rider_camera_pose
from src.game.meshes import build_scene
from src.game.raster import GBufferRaster, create_headless_context
from src.game.session import load_level
from src.game.world import World


def bench_resolution(config: BenchGameConfig, resolution: str, ctx) -> dict:
    width, height = parse_resolution(resolution)
    world = World(load_level(config.level), seed=config.seed)
    pilot = Autopilot()
    renderer = GBufferRaster(width, height, config.camera, ctx=ctx)
    times: dict[str, list[float]] = {"world_step": [], "scene_build": [], "draw": [], "readback": []}
    prev_pose = rider_camera_pose(world.state(), config.camera)
    try:
        for index in range(config.warmup_frames + config.frames):
            t0 = time.perf_counter()
            world.step(pilot(world), 1.0 / config.fps)
            t1 = time.perf_counter()
            pose = rider_camera_pose(world.state(), config.camera)
            scene = build_scene(world, pose, prev_pose, show_handlebar=config.camera.show_handlebar)
            t2 = time.perf_counter()
            renderer.draw(scene, pose.view_matrix(), prev_pose.view_matrix())
            ctx.finish()  # the draw's real cost, not just its submission
            t3 = time.perf_counter()
            renderer.read()
            t4 = time.perf_counter()
            prev_pose = pose
            if world.game_over:
                world.reset(world.seed + 1)
            if index >= config.warmup_frames:
                for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    value_ms = 1e3 * value
                    times[key].append(value_ms)
    finally:
        renderer.release()
    row = {"resolution": resolution, "frames": config.frames}
    for key, values in times.items():
        row[f"{key}_ms_median"] = float(np.median(values))
        row[f"{key}_ms_mean"] = float(np.mean(values))
    render_ms = np.array(times["draw"]) + np.array(times["readback"])
    row["render_readback_ms_median"] = float(np.median(render_ms))
    row["render_readback_ms_mean"] = float(np.mean(render_ms))
    frame_ms = np.array(times["world_step"]) + np.array(times["scene_build"]) + render_ms
    row["game_frame_ms_median"] = float(np.median(frame_ms))
    row["game_fps"] = float(1e3 / np.median(frame_ms))
    return row


def run_bench_game(config: BenchGameConfig) -> dict:
    ctx = create_headless_context()
    rows = [bench_resolution(config, resolution, ctx) for resolution in config.resolutions]
    result = {
        "benchmark": "game",
        "gl_renderer": ctx.info.get("GL_RENDERER", "?"),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "config": dataclasses.asdict(config),
        "results": rows,
    }
    ctx.release()
    return result


def format_table(result: dict) -> str:
    header = (
        f"{'resolution':>10} {'world step':>11} {'scene':>8} {'draw':>8} {'readback':>9} {'render+read':>12}"
        f" {'game fps':>9}"
    )
    lines = [f"game benchmark on {result['gl_renderer']} (median ms per frame)", header]
    for row in result["results"]:
        lines.append(
            f"{row['resolution']:>10} {row['world_step_ms_median']:>11.3f} {row['scene_build_ms_median']:>8.3f} "
            f"{row['draw_ms_median']:>8.3f} {row['readback_ms_median']:>9.3f} "
            f"{row['render_readback_ms_median']:>12.3f} {row['game_fps']:>9.1f}"
        )
    return "\n".join(lines)


def run_bench_game_and_report(config: BenchGameConfig) -> dict:
    result = run_bench_game(config)
    return report_table_and_json(format_table(result), result, config.json_out)
