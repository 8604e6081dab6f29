"""A second, real model class behind the renderer interface: the flat-colour baseline package
rides through play, the benchmark (torch and ncnn) and validation exactly as the DiT does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from src.common.errors import UserError
from src.common.video import read_video_frames
from src.runtime.backends import make_renderer
from src.runtime.package import load_package
from src.runtime.renderer import render_clip

ROOT = Path(__file__).resolve().parents[1]


def run(*args, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SDL_VIDEODRIVER": "dummy"}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def flat_package(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("flat") / "flat_color"
    done = run("src.scripts.baseline_package", "--data", str(tiny_dataset), "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.slow
def test_the_flat_package_holds_no_weights_and_returns_the_albedo(flat_package):
    package = load_package(flat_package)
    assert json.loads((flat_package / "config.json").read_text())["_class_name"] == "FlatColorRenderer"
    assert len(package.model.state_dict()) == 0
    renderer = make_renderer(package)
    assert renderer.frames_per_step == 1 and renderer.native_size == (32, 32)
    cond = torch.rand(4, 9, 32, 32) * 2 - 1
    frames = render_clip(renderer, cond)
    assert np.array_equal(frames, cond[:, :3].numpy())


@pytest.mark.slow
def test_the_flat_package_runs_in_ncnn_like_torch(flat_package, tmp_path):
    package = load_package(flat_package)
    cond = torch.rand(3, 9, 32, 32) * 2 - 1
    ncnn_frames = render_clip(make_renderer(package, backend="ncnn"), cond)
    assert np.abs(ncnn_frames - cond[:, :3].numpy()).max() < 1e-6
    assert (flat_package / "ncnn" / "32x32" / "direct_step.ncnn.param").is_file()


@pytest.mark.slow
def test_the_flat_package_rides_headless_through_play_game(flat_package, tmp_path):
    video = tmp_path / "flat.mp4"
    done = run(
        "src.scripts.play_game",
        "--checkpoint",
        str(flat_package),
        "--headless",
        "--autopilot",
        "--frames",
        "12",
        "--record",
        str(video),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    frames = read_video_frames(video)
    assert frames.shape[0] == 12 and frames.shape[1:3] == (32, 32)
    assert frames[4:].std() > 5  # the albedo of a real ride, not a blank view


@pytest.mark.slow
def test_the_flat_package_runs_in_the_benchmark(flat_package, tmp_path):
    out = tmp_path / "bench.json"
    done = run(
        "src.scripts.benchmark",
        "--checkpoint",
        str(flat_package),
        "--resolutions",
        "[model]",
        "--steps",
        "[1]",
        "--backends",
        "[torch, ncnn]",
        "--frames",
        "6",
        "--warmup_frames",
        "2",
        "--json_out",
        str(out),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["renderer"], r["backend"]) for r in rows] == [
        ("raster", "-"),
        ("neural", "torch"),
        ("neural", "ncnn"),
    ]
    assert all(r["model"] == "FlatColorRenderer" and r["passes_per_framelet"] == 1 for r in rows[1:])


@pytest.mark.slow
def test_validation_of_the_flat_package_scores_the_flat_condition_numbers(
    flat_package, tiny_dataset, tmp_path
):
    from src.common.config import load_config
    from src.train.config import TrainConfig
    from src.train.data import TrainingData
    from src.train.validation import run_validation

    config = load_config(TrainConfig, ROOT / "conf" / "base.yaml", ROOT / "conf" / "cpu_tiny.yaml")
    config.data.dataset, config.data.crop = str(tiny_dataset), None
    config.validation.num_real_clips, config.validation.rollout_frames = 2, 4
    config.validation.game_rollout_frames = 4
    config.validation.feature_metrics = True
    package = load_package(flat_package)
    metrics = run_validation(
        package.model, package.sampling, TrainingData(config), config, run_dir=tmp_path, step=0
    )
    assert metrics["real_psnr"] == metrics["real_flat_psnr"]
    assert metrics["real_ssim"] == metrics["real_flat_ssim"]
    assert "game_swd_to_real" in metrics
    # the network-based keys with validation.feature_metrics: the same frames, the same numbers
    assert (
        metrics["real_kid"] == metrics["real_flat_kid"]
        and metrics["real_lpips"] == metrics["real_flat_lpips"]
    )
    assert metrics["real_grid_peak"] == metrics["real_flat_grid_peak"] and "game_kid_to_real" in metrics


def test_a_package_naming_an_unknown_class_is_one_clear_error(flat_package, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(flat_package, broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "_class_name": "NoSuchRenderer"}))
    with pytest.raises(UserError, match="unknown model class 'NoSuchRenderer'"):
        load_package(broken)
