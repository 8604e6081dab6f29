"""The play benchmark: per-stage milliseconds and end-to-end FPS for raster and neural rides.

For each resolution, renderer, backend and step count it rides the autopilot headless (EGL)
for ``frames`` frames after ``warmup_frames`` and measures, per frame: world step, G-buffer
render + readback, encode, model (per renderer step -- a framelet of ``frames_per_step`` frames
-- and per network evaluation, with the passes a step costs), display (scaling
the frame into a pygame window under whatever SDL video driver is set; the dummy one headless)
and the end-to-end frame rate with every stage run in sequence on this machine.

``other`` is what the frame took beyond those stages (the loop's own Python, waits for a core):
the stages and ``other`` add up to the frame time. ``background_load N`` times every row a second
time beside N busy processes (``src/bench/background_load.py``) and reports that FPS beside the
idle one, with the load average at each row's end.

``soak_game_minutes`` adds a long neural ride that reports resident memory (RSS), threads and
open file handles at its start and end, so leaks show.

    uv run python -m src.scripts.benchmark
    uv run python -m src.scripts.benchmark --resolutions '[model, 224x224]' --steps '[1, 2]' \
        --backends '[torch, ncnn]' --soak_game_minutes 10
"""

from __future__ import annotations

import dataclasses
import os
import platform
import threading
import time

import numpy as np
import psutil
import torch

from src.bench.background_load import BackgroundLoad, load_average, under_load_columns
from src.bench.bench_play_report import format_table
from src.bench.config import BenchmarkConfig
from src.bench.frame_timing import stage_means, time_frames
from src.common.frame_size import FrameSize
from src.common.io import report_table_and_json
from src.common.progress import tqdm  # plain lines when the output is not a terminal
from src.game.config import PlayConfig
from src.game.display import GameWindow
from src.game.session import GameSession
from src.play.config import RideConfig
from src.play.fetch import resolve_checkpoint
from src.play.neural import NeuralRenderer, PipelinedRenderer
from src.play.ride import neural_frame_size
from src.runtime.backends import make_renderer
from src.runtime.package import load_package
from src.runtime.threads import runtime_threads


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else -1


class _Display:
    def __init__(self, width: int, height: int):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

        self.window = GameWindow(width, height)

    def show(self, rgb: np.ndarray) -> None:
        self.window.show(rgb, ["benchmark"])

    def close(self) -> None:
        self.window.close()


def _bench_one(
    config: BenchmarkConfig,
    *,
    resolution: str,
    renderer: str,
    backend: str | None,
    steps: int | None,
    package,
    progress_label: str,
) -> dict:
    """One row: ride ``frames`` frames after the warm-up with ``renderer`` and average each stage."""
    neural, runner, resolution, gbuffer_resolution = _open_neural(
        config, resolution=resolution, renderer=renderer, backend=backend, steps=steps, package=package
    )
    session = GameSession(
        PlayConfig(headless=True, autopilot=True, seed=config.seed, resolution=gbuffer_resolution)
    )
    frame_size = FrameSize.parse(resolution)
    display = _Display(frame_size.width, frame_size.height) if config.display else None
    try:
        times = time_frames(
            session,
            neural,
            display,
            frames=config.frames,
            warmup_frames=config.warmup_frames,
            progress_label=progress_label,
        )
    finally:
        if display is not None:
            display.close()
        if neural is not None and config.pipeline:
            neural.close()
        session.release()
    row = {
        "renderer": renderer,
        "model": type(package.model).__name__ if neural is not None else "-",
        "backend": backend or "-",
        "resolution": resolution,
        "gbuffer_resolution": gbuffer_resolution,
        "steps": steps or 0,
        "frames_per_step": 1,
        "passes_per_framelet": 0,
        "model_ms_per_framelet": 0.0,
        "model_ms_per_step": 0.0,
        **stage_means(times, pipelined=bool(neural is not None and config.pipeline)),
        "load_average": load_average(),  # at the row's end: what else the machine was doing
    }
    if neural is not None:
        model_ms = times["model"]
        passes = runner.passes_per_step  # e.g. the denoising steps plus the pass that caches context
        framelet_ms = float(np.mean([ms for ms in model_ms if ms > 0])) if any(model_ms) else 0.0
        row.update(
            frames_per_step=runner.frames_per_step,
            passes_per_framelet=passes,
            model_ms_per_framelet=framelet_ms,
            model_ms_per_step=framelet_ms / passes,
            threads=runner_threads(),
        )
    return row


def _open_neural(
    config: BenchmarkConfig,
    *,
    resolution: str,
    renderer: str,
    backend: str | None,
    steps: int | None,
    package,
):
    """(the neural renderer, pipelined where ``config.pipeline``; its runner; the frames'
    WIDTHxHEIGHT; the G-buffers'); for ``raster`` (None, None, ``resolution``, ``resolution``).
    ``model`` resolves to the package's own size."""
    if renderer == "raster":
        return None, None, resolution, resolution
    ride_config = RideConfig(resolution=None if resolution == "model" else resolution)
    width, height = neural_frame_size(ride_config, package)
    runner = make_renderer(
        package,
        backend=backend,
        height=height,
        width=width,
        num_denoising_steps=steps,
        device=config.device,
        seed=config.seed,
        threads=runtime_threads(config.threads),
    )
    neural = NeuralRenderer(package, runner, fov_y_deg=ride_config.camera.fov_y_deg)
    gbuffer_size = runner.gbuffer_size if config.gbuffer_size == "renderer" else (width, height)
    return (
        PipelinedRenderer(neural) if config.pipeline else neural,
        runner,
        f"{width}x{height}",
        "{}x{}".format(*gbuffer_size),
    )


def runner_threads() -> int:
    # make_renderer gave torch the runtime's thread count
    return torch.get_num_threads()


def soak(config: BenchmarkConfig, package, *, backend: str, steps: int) -> dict:
    """Ride ``soak_game_minutes`` of game time headless with the neural renderer; report memory."""
    frames = int(config.soak_game_minutes * 60 * config.soak_fps)
    session = GameSession(
        PlayConfig(
            headless=True,
            autopilot=True,
            seed=config.seed,
            fps=config.soak_fps,
            resolution=f"{package.width}x{package.height}",
        )
    )
    runner = make_renderer(
        package, backend=backend, num_denoising_steps=steps, device=config.device, seed=config.seed
    )
    neural = NeuralRenderer(package, runner)
    samples = []
    start_time = time.perf_counter()
    try:
        for index in tqdm(range(frames), desc=f"soak {config.soak_game_minutes:g} game minutes"):
            gbuffer, _, _ = session.frame(None)
            if session.world.game_over:
                session.restart()
                neural.reset()
            neural.push(gbuffer)
            if index % max(1, frames // 20) == 0 or index == frames - 1:
                samples.append(
                    {
                        "frame": index,
                        "rss_mb": _rss_mb(),
                        "threads": threading.active_count(),
                        "open_files": _open_files(),
                    }
                )
    finally:
        session.release()
    # the first sample is taken after the first frame, once the model and context exist
    return {
        "game_minutes": config.soak_game_minutes,
        "frames": frames,
        "wall_s": time.perf_counter() - start_time,
        "backend": backend,
        "steps": steps,
        "runs": session.runs,
        "rss_start_mb": samples[0]["rss_mb"],
        "rss_end_mb": samples[-1]["rss_mb"],
        "rss_max_mb": max(s["rss_mb"] for s in samples),
        "threads_start": samples[0]["threads"],
        "threads_end": samples[-1]["threads"],
        "open_files_start": samples[0]["open_files"],
        "open_files_end": samples[-1]["open_files"],
        "samples": samples,
    }


def _bench_row(config: BenchmarkConfig, **setting) -> dict:
    """One row: timed idle, then (``background_load``) again beside the busy processes."""
    row = _bench_one(config, **setting)
    if config.background_load:
        with BackgroundLoad(config.background_load):
            loaded = _bench_one(
                config, **{**setting, "progress_label": setting["progress_label"] + " (load)"}
            )
        row.update(under_load_columns(row, loaded))
    return row


def run_benchmark(config: BenchmarkConfig) -> dict:
    """Every row (resolution x renderer x backend x steps, after a raster row per resolution), the
    machine they ran on and, with ``soak_game_minutes``, the soak."""
    checkpoint = resolve_checkpoint(config.checkpoint)
    packages = [load_package(checkpoint, renderer=name) for name in config.renderers]
    package = packages[0]
    rows = _bench_rows(config, packages)
    result = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "runtime_threads": runtime_threads(config.threads),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "background_load": config.background_load,
        },
        "checkpoint": str(config.checkpoint),
        "config": dataclasses.asdict(config),
        "rows": rows,
    }
    if config.soak_game_minutes > 0:
        result["soak"] = soak(config, package, backend=config.backends[0], steps=config.steps[0])
    return result


def _bench_rows(config: BenchmarkConfig, packages: list) -> list[dict]:
    """Per resolution: the raster row, then each renderer x backend x steps."""
    package = packages[0]
    rows = []
    for resolution in config.resolutions:
        if resolution == "model":
            raster_resolution = "{}x{}".format(*neural_frame_size(RideConfig(resolution=None), package))
        else:
            raster_resolution = resolution
        rows.append(
            _bench_row(
                config,
                resolution=raster_resolution,
                renderer="raster",
                backend=None,
                steps=None,
                package=package,
                progress_label=f"raster {raster_resolution}",
            )
        )
        for member in packages:
            name = member.name or "neural"
            for backend in config.backends:
                for steps in config.steps:
                    rows.append(
                        _bench_row(
                            config,
                            resolution=resolution,
                            renderer=name,
                            backend=backend,
                            steps=steps,
                            package=member,
                            progress_label=f"{name} {backend} {resolution} {steps} step(s)",
                        )
                    )
    return rows


def run_and_report(config: BenchmarkConfig) -> dict:
    result = run_benchmark(config)
    return report_table_and_json(format_table(result), result, config.json_out)
