"""``evaluate`` scores a package on real clips and a game ride: the files and keys it writes, the
flat-colour baseline scoring exactly the flat numbers, videos prepared and cached, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from src.conditions.encode import ConditionStats
from src.conditions.spec import ConditionSpec
from src.eval.evaluate import FID_KEYS, REQUIRED_KEYS
from src.net.presets import build_dit
from src.runtime.package import SamplingDefaults, write_package
from src.scripts.evaluate import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dit_package(tmp_path_factory):
    model = build_dit("tiny", hidden_dim=32, num_blocks=1, num_heads=2, stem_channels=8, refine_channels=8)
    directory = tmp_path_factory.mktemp("pkg") / "dit"
    # statistics unlike the dataset's: evaluate must encode with these, as play does
    stats = ConditionStats(depth_log_low=-0.5, depth_log_high=0.5, flow_scale=0.2)
    write_package(
        directory,
        model=model,
        spec=ConditionSpec(),
        stats=stats,
        width=32,
        height=32,
        fps=8,
        sampling=SamplingDefaults(num_denoising_steps=1),
        readme="# dit\n",
        card={"step": 1},
    )
    return directory


def evaluate(*args: str) -> dict:
    main([*args])
    out = Path(args[args.index("--out") + 1])
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_evaluate_writes_every_key_and_picture(dit_package, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "out"
    metrics = evaluate(
        "--checkpoint",
        str(dit_package),
        "--data",
        str(tiny_dataset),
        "--split",
        "val",
        "--clip_frames",
        "4",
        "--game_frames",
        "6",
        "--game_offset_frames",
        "2",
        "--out",
        str(out),
        "--cache_dir",
        str(tmp_path),
    )
    assert set(REQUIRED_KEYS) <= set(metrics)
    assert all(isinstance(metrics[key], float) for key in REQUIRED_KEYS), metrics
    # KID, LPIPS and the grid peaks of this run; FID is written but null at 8 frames a set
    for key in FID_KEYS:
        assert key in metrics and metrics[key] is None, key
    assert metrics["real_kid"] > 0 and metrics["game_raster_kid_to_real"] > 0 and metrics["real_kid_std"] >= 0
    assert metrics["real_lpips"] > 0 and metrics["real_flat_lpips"] > 0
    assert (
        metrics["num_real_clips"] == 2 and metrics["num_real_frames"] == 8 and metrics["num_game_frames"] == 6
    )
    assert {"metrics.json", "run.json", "real.png", "real.mp4", "game.png", "game.mp4"} <= {
        p.name for p in out.iterdir()
    }
    assert (out / "game_seed7_8f_32x32_8fps" / "meta.json").is_file()  # the ride, 2 frames skipped
    printed = capsys.readouterr().out
    assert "PSNR dB" in printed and "game ride" in printed and f"{metrics['real_psnr']:.4g}" in printed
    assert (
        "KID to real" in printed and f"{metrics['real_kid']:.4g}" in printed and "FID not reported" in printed
    )
    run = json.loads((out / "run.json").read_text())
    assert run["renderer"] == "VelodreamDiT" and len(run["clips"]) == 2

    # the conditions are encoded with the package's statistics, not the dataset's
    from src.eval.scoring import load_real_clips
    from src.runtime.package import load_package

    package = load_package(dit_package)
    kwargs = dict(split="val", clip_frames=4, num_clips=1, spec=package.spec, with_forward_flow=False)
    with_package = load_real_clips(tiny_dataset, stats=package.stats, **kwargs)[0]["cond"]
    with_dataset = load_real_clips(tiny_dataset, stats=None, **kwargs)[0]["cond"]
    depth = package.spec.slices()["depth"]
    assert not with_package[:, depth].equal(with_dataset[:, depth])
    assert with_package[:, :3].equal(with_dataset[:, :3])  # albedo needs no statistics


@pytest.mark.window
def test_a_drift_ride_scores_its_first_and_last_windows_of_one_rollout(
    dit_package, tiny_dataset, tmp_path, capsys
):
    from src.eval.scoring import score_game_drift, score_game_ride
    from src.runtime.backends import make_renderer
    from src.runtime.package import load_package

    out = tmp_path / "out"
    metrics = evaluate("--checkpoint", str(dit_package), "--data", str(tiny_dataset), "--clip_frames", "4",
                       "--game_frames", "4", "--drift_ride_frames", "12", "--out", str(out),
                       "--cache_dir", str(tmp_path), "--feature_metrics", "false")  # fmt: skip
    assert metrics["game_late_start_frame"] == 8 and metrics["num_game_frames"] == 4
    for key in ("game_late_swd_to_real", "game_late_warp_error", "game_drift_swd", "game_drift_warp_error"):
        assert isinstance(metrics[key], float), key
    assert metrics["game_drift_swd"] == pytest.approx(
        metrics["game_late_swd_to_real"] / metrics["game_swd_to_real"]
    )
    assert "drift (late window)" in capsys.readouterr().out
    # the early window is the plain ride's first frames: the same frames, the same numbers
    from src.eval.scoring import load_game_ride

    package = load_package(dit_package)
    ride = load_game_ride(
        out, size=(32, 32), frames=12, seed=7, fps=8, spec=package.spec, stats=package.stats
    )
    renderer = make_renderer(package)
    drift, _ = score_game_drift(renderer, ride, window_frames=4, spec=package.spec, real_frames=None)
    plain, _ = score_game_ride(
        renderer, {k: v[:4] for k, v in ride.items()}, spec=package.spec, real_frames=None
    )
    assert drift["game_warp_error"] == pytest.approx(plain["game_warp_error"], rel=1e-5)


@pytest.mark.slow
def test_the_flat_baseline_scores_exactly_the_flat_numbers(flat_package, tiny_dataset, tmp_path):
    metrics = evaluate(
        "--checkpoint",
        str(flat_package),
        "--data",
        str(tiny_dataset),
        "--split",
        "all",
        "--clip_frames",
        "8",
        "--num_clips",
        "3",
        "--game_frames",
        "4",
        "--out",
        str(tmp_path / "o"),
        "--renderer",
        "FlatColorRenderer",
        "--cache_dir",
        str(tmp_path),
        "--feature_metrics",
        "false",
    )
    assert metrics["num_real_clips"] == 3
    for measure in ("psnr", "ssim", "swd", "seam_ratio", "warp_error"):
        assert metrics[f"real_{measure}"] == metrics[f"real_flat_{measure}"], measure
    assert metrics["game_swd_to_real"] == metrics["game_flat_swd_to_real"]
    assert metrics["real_flat_psnr"] < 40  # the albedo is not the frame


@pytest.mark.slow
def test_a_folder_of_videos_is_prepared_at_the_package_size_once(flat_package, tmp_path):
    from src.common.video import write_mp4
    from src.data.decode import DecodeConfig, decode_video
    from src.data.sources import find_embedded_file

    videos = tmp_path / "videos"
    frames = decode_video(
        find_embedded_file("bikes.mp4"), DecodeConfig(resolution="64x48", fps=8.0, max_frames=20)
    )
    write_mp4(videos / "cut.mp4", frames, fps=8.0)
    cache = tmp_path / "cache"
    args = [
        "--checkpoint",
        str(flat_package),
        "--data",
        str(videos),
        "--split",
        "all",
        "--clip_frames",
        "8",
        "--game_frames",
        "0",
        "--cache_dir",
        str(cache),
        "--feature_metrics",
        "false",
    ]
    first = subprocess.run(
        [sys.executable, "-m", "src.scripts.evaluate", *args, "--out", str(tmp_path / "a")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert "preparing 1 video(s) at 32x32, 8 fps" in first.stdout
    [prepared] = (cache / "prepared").iterdir()
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["resolution"] == [32, 32] and manifest["totals"]["val_frames"] == 0  # split all: no cut
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["num_real_clips"] == 2 and metrics["game_swd_to_real"] is None  # 20 frames, no ride

    second = evaluate(*args, "--out", str(tmp_path / "b"))
    assert second == {**metrics, "seconds": second["seconds"]}
    assert [p.name for p in (cache / "prepared").iterdir()] == [prepared.name]  # prepared once


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--checkpoint", "no/such/package"], "renderer package not found"),
        (["--data", "EMPTY"], "no videos found"),
        (["--data", "no/such/data"], "does not exist"),
        (["--renderer", "Student"], "holds no renderer called 'Student': it has FlatColorRenderer"),
        (["--split", "nonsense"], "unknown --split 'nonsense'"),
        (["--clip_frames", "3"], "multiple of 2"),
        (["--clip_frames", "64"], "no val part"),
        (["--game_level", "no/such/level.yaml"], "--game_level no/such/level.yaml: no such level file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(flags, message, flat_package, tiny_dataset, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    args = {
        "--checkpoint": str(flat_package),
        "--data": str(tiny_dataset),
        "--out": str(tmp_path / "o"),
        "--cache_dir": str(tmp_path),
        "--game_frames": "0",
    }
    for flag, value in zip(flags[::2], flags[1::2]):
        args[flag] = str(tmp_path / "empty") if value == "EMPTY" else value
    with pytest.raises(SystemExit) as exit_info:
        main([item for pair in args.items() for item in pair])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "\n" not in error and message in error, error
