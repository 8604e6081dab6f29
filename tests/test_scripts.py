"""The smaller entry points run as a user would run them (subprocess, real files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_download_checkpoint_prints_the_local_package(tiny_dit_package):
    done = run("src.scripts.download_checkpoint", str(tiny_dit_package))
    assert done.returncode == 0 and done.stdout.strip() == str(tiny_dit_package)


def test_publish_checkpoint_offline_is_one_clear_error(tiny_dit_package):
    done = run(
        "src.scripts.publish_checkpoint",
        str(tiny_dit_package),
        "--repo-id",
        "velodream/test",
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().startswith("error:") and "Traceback" not in done.stderr


@pytest.mark.slow
def test_benchmark_prints_a_table_and_writes_json(tiny_dit_package, tmp_path):
    out = tmp_path / "bench.json"
    done = run(
        "src.scripts.benchmark",
        "--checkpoint",
        str(tiny_dit_package),
        "--resolutions",
        "[model]",
        "--steps",
        "[1]",
        "--backends",
        "[torch]",
        "--frames",
        "6",
        "--warmup_frames",
        "2",
        "--soak_game_minutes",
        "0.01",
        "--json_out",
        str(out),
        env={"SDL_VIDEODRIVER": "dummy"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "FPS" in done.stdout and "soak" in done.stdout
    result = json.loads(out.read_text())
    renderers = [row["renderer"] for row in result["rows"]]
    assert renderers == ["raster", "neural"]
    neural = result["rows"][1]
    assert neural["model_ms_per_step"] > 0 and neural["encode_ms"] > 0 and neural["fps"] > 0
    assert result["soak"]["frames"] == 18 and result["soak"]["rss_end_mb"] > 0


@pytest.mark.training
def test_export_package_from_a_run(tiny_dataset, tmp_path):
    tiny_model = "{hidden_dim: 32, num_blocks: 1, num_heads: 2, stem_channels: 8, refine_channels: 8}"
    done = run(
        "src.scripts.train_net",
        "--conf",
        "conf/base.yaml",
        "--conf",
        "conf/cpu_tiny.yaml",
        "--runs_dir",
        str(tmp_path),
        "--data.dataset",
        str(tiny_dataset),
        "--max_steps",
        "1",
        "--data.crop",
        "[32, 32]",
        "--data.batch_size",
        "1",
        "--model.overrides",
        tiny_model,
        "--validation.enabled",
        "false",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "exported"
    done = run(
        "src.scripts.export_package", str(tmp_path / "cpu_tiny"), "--out", str(out), "--albedo_detail", "0.5"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    from src.runtime.package import load_package

    package = load_package(out)
    assert package.card["step"] == 1 and "train_net" in (out / "README.md").read_text()
    assert package.sampling.albedo_detail == 0.5  # a render-time setting given at export
    assert (package.width, package.height) == (32, 32)
    assert (out / "onnx" / "32x32" / "framelet_step.onnx").is_file()  # the ONNX export beside the package
    assert f"wrote {out / 'onnx' / '32x32' / 'framelet_step.onnx'}" in done.stdout
