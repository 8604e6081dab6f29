"""Riding with neural graphics: the bundled model, headless recording, the window, restarts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from src.common.video import read_video_frames
from src.play.config import RideConfig
from src.play.ride import build_neural_source, ride
from src.runtime.defaults import DEFAULT_CHECKPOINT

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / DEFAULT_CHECKPOINT


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_the_bundled_package_is_complete_and_small():
    from src.play.fetch import check_package
    from src.runtime.package import load_package

    check_package(BUNDLED)
    committed = [p for p in BUNDLED.rglob("*") if p.is_file() and "ncnn" not in p.relative_to(BUNDLED).parts]
    size = sum(p.stat().st_size for p in committed)  # ncnn/ exports are made on demand, not committed
    assert size < 50 * 2**20
    from src.runtime.package import renderer_names

    for name in renderer_names(BUNDLED) or [None]:  # a bundle: every renderer in it
        package = load_package(BUNDLED, renderer=name)
        card = (package.path / "README.md").read_text()
        assert "Reproduce" in card and "train_net" in card and package.card["step"] > 0


@pytest.mark.slow
def test_headless_neural_ride_records_24_frames_that_differ_from_raster(tmp_path):
    neural, raster, sbs = tmp_path / "neural.mp4", tmp_path / "raster.mp4", tmp_path / "sbs.mp4"
    common = ["--headless", "--autopilot", "--frames", "24", "--seed", "5"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.scripts.play_game",
            *common,
            "--record",
            str(neural),
            "--record_side_by_side",
            str(sbs),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    package_width, package_height = _package_size()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.scripts.play_game",
            *common,
            "--renderer",
            "raster",
            "--resolution",
            f"{package_width}x{package_height}",
            "--record",
            str(raster),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    neural_frames, raster_frames = read_video_frames(neural), read_video_frames(raster)
    assert len(neural_frames) == 24 and neural_frames.shape == raster_frames.shape
    difference = np.abs(neural_frames[4:].astype(float) - raster_frames[4:].astype(float)).mean()
    assert difference > 10  # the model paints its own frames, not the raster colours
    assert neural_frames[4:].std() > 10  # and they are not blank
    side = read_video_frames(sbs)
    assert len(side) == 24 and side.shape[2] >= 3 * package_width


def _package_size() -> tuple[int, int]:
    """(width, height) play renders the bundled package at."""
    from src.play.ride import neural_frame_size
    from src.runtime.package import load_package

    return neural_frame_size(RideConfig(), load_package(BUNDLED))


@pytest.mark.slow
def test_the_window_runs_a_few_frames_with_the_neural_renderer(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    result = ride(RideConfig(frames=12, autopilot=True))
    assert result.frames == 12


def test_a_restart_resets_the_neural_context():
    source, (width, height), _ = build_neural_source(RideConfig(headless=True, frames=4))
    from src.common.gbuffer import GBuffer

    gbuffer = GBuffer(
        color=np.zeros((height, width, 3), np.uint8),
        depth=np.full((height, width), 10.0, np.float32),
        flow=np.zeros((height, width, 2), np.float32),
        normals=np.dstack([np.zeros((height, width, 2)), np.ones((height, width))]).astype(np.float32),
        albedo=np.full((height, width, 3), 128, np.uint8),
    )
    source.select_views(set(source.names))  # every renderer of the package runs
    for _ in range(4):
        source(gbuffer, None)
    renderers = [
        neural.renderer for neural in source.renderers.values()
    ]  # the DiT's cache or the student's state
    for renderer in renderers:
        assert any(not torch.equal(a, b) for a, b in zip(_context(renderer), _fresh_context(renderer)))
    source(gbuffer, None)  # a DiT: half a framelet pending
    source.reset()
    for neural, renderer in zip(source.renderers.values(), renderers):
        assert all(torch.equal(a, b) for a, b in zip(_context(renderer), _fresh_context(renderer)))
        assert not neural._pending


def _context(renderer) -> list:
    """What a renderer carries from frame to frame, as tensors."""
    if hasattr(renderer, "cache"):
        return [torch.tensor(float(renderer.cache.num_framelets))]
    return [renderer.feedback, renderer.state]


def _fresh_context(renderer) -> list:
    if hasattr(renderer, "cache"):
        return [torch.tensor(0.0)]
    width, height = renderer.frame_size
    return list(
        renderer.runner.initial_recurrence(1, height, width, device=renderer.device, dtype=renderer.dtype)
    )


@pytest.mark.slow
def test_missing_or_broken_checkpoints_are_one_clear_error(tmp_path):
    for checkpoint, message in [
        (str(tmp_path / "nope"), "renderer package not found"),
        ("hf://velodream/none", "offline"),
        ("https://example.invalid/model.tar.gz", "sha256"),
    ]:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "src.scripts.play_game",
                "--checkpoint",
                checkpoint,
                "--headless",
                "--frames",
                "2",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "VELODREAM_CACHE": str(tmp_path)},
        )
        assert done.returncode == 2
        assert (
            done.stderr.strip().startswith("error:")
            and message in done.stderr
            and "Traceback" not in done.stderr
        )


@pytest.mark.window
def test_the_window_opens_on_a_real_x_server(tmp_path):
    """SDL on X11 next to the game's EGL context (the dummy driver cannot catch GLX conflicts)."""
    import os
    import shutil
    import time

    if shutil.which("Xvfb") is None:
        assert not os.environ.get("CI"), "CI installs xvfb (.ci/run)"
        pytest.skip("Xvfb is not installed here (apt-get install xvfb)")
    display = f":{100 + os.getpid() % 400}"
    server = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "800x600x24"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(1.0)
        env = {**os.environ, "DISPLAY": display, "SDL_VIDEODRIVER": "x11"}
        for renderer in ("neural", "raster"):
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "src.scripts.play_game",
                    "--renderer",
                    renderer,
                    "--autopilot",
                    "--frames",
                    "20",
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr[-2000:]
    finally:
        server.terminate()
        server.wait()


@pytest.mark.slow
def test_the_bundled_student_rides_60_frames_at_224(tmp_path):
    """The bundle plays its U-Net student by default at 224x224; --renderer names it."""
    from src.runtime.package import load_package

    assert load_package(BUNDLED).name == "student"
    video = tmp_path / "student.mp4"
    done = subprocess.run(
        [sys.executable, "-m", "src.scripts.play_game", "--renderer", "student", "--headless", "--autopilot",
         "--frames", "60", "--record", str(video)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    frames = read_video_frames(video)
    assert frames.shape == (60, 224, 224, 3) and frames[4:].std() > 10
