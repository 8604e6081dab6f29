"""play_game's inputs that cannot hurt: each bad value is one `error:` line, exit code 2, no
traceback; and no display means a one-line error naming the headless command, not a silent hang."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.scripts.play_game import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def _one_error_line(capsys, args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fps", "0"], "invalid --fps 0"),
        (["--fps", "-5"], "invalid --fps -5"),
        (["--frames", "-1"], "invalid --frames -1"),
        (["--steps", "0"], "invalid --steps 0"),
        (["--resolution", "0x0"], "invalid resolution '0x0'"),
        (["--resolution=-96x96"], "invalid resolution '-96x96'"),
        (["--resolution", "-96x96"], "--conf.resolution"),
        (["--checkpoint", "https://example.invalid/model.tar.gz"], "no #sha256="),
    ],
)
def test_bad_values_fail_before_a_model_is_loaded(args, message, capsys, monkeypatch):
    import src.play.ride as ride_module

    def no_loading(*a, **k):
        raise AssertionError("the package was resolved before the settings were checked")

    if "--checkpoint" not in args:
        monkeypatch.setattr(ride_module, "resolve_checkpoint", no_loading)
    assert message in _one_error_line(capsys, ["--headless", "--autopilot", "--frames", "2", *args])


@pytest.mark.parametrize(
    ("resolution", "message"),
    [
        # the bundle's renderers all render at the game's size: the student takes multiples of 16,
        # the DiT multiples of its patch (16) up to 224x224
        ("97x97", "97x97 is not a multiple of 16"),  # odd
        ("104x96", "104x96 is not a multiple of 16"),
        (
            "512x512",
            "renderer dit: the model cannot render 512x512 exceeds the model's largest grid (224x224)",
        ),
    ],
)
def test_resolutions_the_bundled_model_cannot_render(resolution, message, capsys):
    # side by side runs every renderer of the bundle, so each one is checked (play checks only the
    # renderers that run: test_one_line_errors.py)
    args = ["--headless", "--frames", "2", "--renderer", "side_by_side", "--resolution", resolution]
    assert message in _one_error_line(capsys, args)


def _without_display() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    env["XDG_RUNTIME_DIR"] = env.get("XDG_RUNTIME_DIR", "/nonexistent")
    return env


@pytest.mark.parametrize("renderer", ["neural", "raster"])
def test_no_display_is_one_line_naming_the_headless_command(renderer):
    done = subprocess.run(
        [sys.executable, "-m", "src.scripts.play_game", "--renderer", renderer],
        cwd=ROOT,
        env=_without_display(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("error: no display to open a window on (DISPLAY=unset, WAYLAND_DISPLAY=unset")
    assert "--headless --autopilot --frames 300 --record ride.mp4" in err


def test_the_window_itself_refuses_an_invisible_driver():
    """run_session's own window (used without ride()) makes the same check."""
    code = (
        "from src.common.errors import UserError\n"
        "from src.game.display import GameWindow\n"
        "try:\n    GameWindow(64, 48)\nexcept UserError as error:\n    print(error.one_line())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_without_display(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "no display to open a window on" in done.stdout, done.stderr


@pytest.mark.slow
def test_an_explicit_video_driver_still_wins(tmp_path):
    env = {**_without_display(), "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.scripts.play_game",
            "--renderer",
            "raster",
            "--autopilot",
            "--frames",
            "3",
            "--resolution",
            "64x48",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
