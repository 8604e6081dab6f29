"""play_game from the command line: headless recording, the window under SDL's dummy driver, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from src.common.gbuffer_io import load_gbuffer_clip
from src.game.config import PlayConfig, WorldConfig
from src.game.session import load_level, run_session
from src.scripts.play_game import main, parse_play_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_headless_autopilot_records_a_decodable_mp4_and_the_gbuffers(tmp_path):
    import av

    video, clip = tmp_path / "x.mp4", tmp_path / "gbuffers"
    command = [
        sys.executable,
        "-m",
        "src.scripts.play_game",
        "--renderer",
        "raster",
        "--headless",
        "--autopilot",
        "--frames",
        "48",
        "--record",
        str(video),
        "--record_gbuffers",
        str(clip),
        "--resolution",
        "96x64",
        "--seed",
        "2",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert len(frames) == 48 and frames[0].shape == (64, 96, 3)
    arrays, meta = load_gbuffer_clip(clip)
    assert meta["num_frames"] == 48 and meta["fps"] == 30 and meta["seed"] == 2
    assert arrays["depth"].shape == (48, 64, 96) and arrays["flow"].shape == (48, 64, 96, 2)
    assert json.loads((clip / "meta.json").read_text())["format"] == "velodream-gbuffer-clip"
    # the video shows the recorded colour G-buffer (up to H.264 loss)
    assert np.abs(frames[10].astype(int) - arrays["color"][10].astype(int)).mean() < 12


def test_the_window_runs_a_few_frames_under_the_dummy_video_driver(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    calls = []

    def extra_view(gbuffer, info):  # the hook play plugs the neural renderer into
        calls.append(info.frame_index)
        return {"inverted": 255 - gbuffer.color}

    extra_view.names = ("inverted",)
    config = PlayConfig(frames=4, resolution="64x48", autopilot=True, renderer="inverted")
    result = run_session(config, view_sources=[extra_view])
    assert result.frames == 4 and calls == [0, 1, 2, 3]


def test_level_and_overrides_layer_in_order(tmp_path):
    level = tmp_path / "level.yaml"
    level.write_text("lanes_per_direction: 2\nmax_vehicles: 5\n")
    config = parse_play_config(["--level", str(level), "--world.max_vehicles", "7", "--seed", "3"])
    assert config.world.lanes_per_direction == 2 and config.world.max_vehicles == 7 and config.seed == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resolution", "320by240"], "invalid resolution"),
        (["--level", "game/levels/no_such_level.yaml"], "level file not found"),
        (["--record", "{file}/x.mp4"], "cannot write video"),
        (["--record_gbuffers", "{file}/clip"], "G-buffer clip"),
        (["--frames", "0"], "invalid --frames"),
    ],
)
def test_bad_input_gives_one_clear_error_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    args = [arg.replace("{file}", str(a_file)) for arg in args]
    with pytest.raises(SystemExit) as exit_info:
        main(["--renderer", "raster", "--headless", "--frames", "2", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and message in err
    assert not os.path.exists(a_file / "x.mp4")


def test_the_autopilot_recorder_writes_what_record_gbuffers_writes_and_reuses_it(tmp_path):
    from src.game.recording import record_autopilot_clip

    clip = record_autopilot_clip(tmp_path / "clip", width=64, height=48, frames=6, seed=4, fps=10)
    run_session(
        PlayConfig(
            headless=True,
            autopilot=True,
            frames=6,
            seed=4,
            resolution="64x48",
            fps=10,
            record_gbuffers=str(tmp_path / "cli"),
        )
    )
    arrays, meta = load_gbuffer_clip(clip)
    expected, expected_meta = load_gbuffer_clip(tmp_path / "cli")
    assert meta == expected_meta and meta["depth_kind"] == "metric" and "fov_y_deg" in meta
    assert all(np.array_equal(arrays[key], expected[key]) for key in expected)
    # the first frame is rendered before the world steps: a new run, no motion
    assert (
        arrays["new_run"][0] == 1
        and not arrays["new_run"][1:].any()
        and np.abs(arrays["flow"][0]).max() < 1e-3
    )
    stamp = (clip / "meta.json").stat().st_mtime_ns
    assert record_autopilot_clip(clip, width=64, height=48, frames=6, seed=4, fps=10) == clip
    assert (clip / "meta.json").stat().st_mtime_ns == stamp  # complete and matching: reused
    record_autopilot_clip(clip, width=64, height=48, frames=4, seed=4, fps=10)
    assert load_gbuffer_clip(clip)[1]["num_frames"] == 4  # another length: recorded again


def test_the_autopilot_recorder_rides_a_level_file_as_play_game_level_does(tmp_path):
    from src.game.recording import record_autopilot_clip

    level = "game/levels/boulevard.yaml"
    clip = record_autopilot_clip(
        tmp_path / "clip", width=64, height=48, frames=4, seed=4, fps=10, level=level
    )
    cli = tmp_path / "cli"
    main(["--headless", "--autopilot", "--frames", "4", "--seed", "4", "--resolution", "64x48",
                    "--fps", "10", "--level", level, "--record_gbuffers", str(cli)])  # fmt: skip
    arrays, meta = load_gbuffer_clip(clip)
    expected, expected_meta = load_gbuffer_clip(cli)
    assert meta == expected_meta and meta["level"] == level
    assert meta["world"]["lanes_per_direction"] == load_level(level).lanes_per_direction == 3
    assert all(np.array_equal(arrays[key], expected[key]) for key in expected)
    # the default street's ride in the same folder is another ride: recorded again, not reused
    record_autopilot_clip(clip, width=64, height=48, frames=4, seed=4, fps=10)
    assert load_gbuffer_clip(clip)[1]["world"]["lanes_per_direction"] == WorldConfig().lanes_per_direction
