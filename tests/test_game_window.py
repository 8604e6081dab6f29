"""The game window on a real X server (Xvfb): smooth scaling and N for nearest, a resizable
letterboxed window, F11 full screen, F12 screenshots, V recordings, H key list. Keys are posted
as pygame events to a real window; SDL picks its X11 driver by itself from DISPLAY."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs in a child process (its own SDL, on the Xvfb display); prints one JSON line of findings.
WINDOW_SCRIPT = r"""
import json, sys
import numpy as np
import pygame
from src.game.display import GameWindow

captures = sys.argv[1]
window = GameWindow(96, 96, capture_dir=captures, fps=30)
found = {"driver": pygame.display.get_driver(), "size": list(window.size)}
checker = (np.indices((96, 96)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, axis=2)  # 1-pixel squares

def press(key):
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="", scancode=0))
    window.poll()

def centre_values():
    screen = window.screen_rgb()
    h, w = screen.shape[:2]
    return int(len(np.unique(screen[h // 2 - 50 : h // 2 + 50, w // 2 - 50 : w // 2 + 50])))

window.show(checker, ["hud"])
found["smooth_levels"] = centre_values()
press(pygame.K_n)
window.show(checker, ["hud"])
found["nearest_levels"] = centre_values()
press(pygame.K_n)

from pygame._sdl2.video import Window
Window.from_display_module().size = (900, 300)  # as a window manager resizes it
window.poll()
white = np.full((96, 96, 3), 255, np.uint8)
window.show(white, [])
screen = window.screen_rgb()
found["resized"] = list(window.size)
found["bars_black"] = bool(screen[150:, :290].max() == 0 and screen[:, 610:].max() == 0)
found["view_white"] = bool(screen[10:290, 310:590].min() == 255)

press(pygame.K_F11)
window.show(white, [])
found["fullscreen"] = list(window.size)
press(pygame.K_F11)
window.show(white, [])
found["windowed_again"] = list(window.size)

found["hud_without_keys"] = window.hud_text(["hud"])
press(pygame.K_h)
found["hud_with_keys"] = window.hud_text(["hud"])
window.show(checker, ["hud"])
press(pygame.K_F12)
window.show(checker, ["hud"])
found["screenshot"] = str(window.last_screenshot)
found["screen_sum"] = int(window.screen_rgb().astype(np.int64).sum())

press(pygame.K_v)
for index in range(12):
    frame = np.zeros((96, 96, 3), np.uint8)
    frame[:, index * 8 :] = 200
    window.show(frame, ["hud"])
found["hud_recording"] = window.hud_text(["hud"])
press(pygame.K_v)
window.show(white, [])
found["recording"] = str(window.last_recording)
window.close()
print(json.dumps(found))
"""


@pytest.fixture
def xvfb_display():
    """A fresh Xvfb (800x600) on a free display number, ready when it says so (-displayfd)."""
    if shutil.which("Xvfb") is None:
        assert not os.environ.get("CI"), "CI installs xvfb (.ci/run)"
        pytest.skip("Xvfb is not installed here (apt-get install xvfb)")
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end) as ready:
            number = ready.readline().strip()  # written once the server accepts connections
        assert number.isdigit(), "Xvfb did not start"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait()


def _on_display(display: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SDL_VIDEODRIVER", "WAYLAND_DISPLAY")}
    return {**env, "DISPLAY": display, "SDL_AUDIODRIVER": "dummy"}


@pytest.mark.window
def test_window_keys_on_a_real_x_server(xvfb_display, tmp_path):
    import av
    import cv2

    captures = tmp_path / "captures"
    done = subprocess.run(
        [sys.executable, "-c", WINDOW_SCRIPT, str(captures)],
        cwd=ROOT,
        env=_on_display(xvfb_display),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["driver"] == "x11" and found["size"] == [672, 672]  # 96 x 7, about 720 tall
    # a checkerboard of 1-pixel squares: bilinear scaling blends them, nearest keeps two levels
    assert found["nearest_levels"] == 2 and found["smooth_levels"] > 10
    # resized to 900x300: the square view is 300x300 in the middle, black bars beside it
    assert found["resized"] == [900, 300] and found["bars_black"] and found["view_white"]
    assert found["fullscreen"] == [800, 600] and found["windowed_again"] == [900, 300]
    assert found["hud_without_keys"] == ["hud", "H: keys"]
    keys = found["hud_with_keys"]
    for line in (
        "F11: full screen",
        "F12: screenshot (PNG)",
        "V: start / stop recording (mp4)",
        "N: smooth / nearest scaling",
        "H: hide these keys",
        "Esc: quit",
        "scaling: smooth",
    ):
        assert line in keys
    assert any(line.startswith("REC ") for line in found["hud_recording"])
    # the screenshot is the window's contents, its path printed
    screenshot = Path(found["screenshot"])
    assert screenshot.parent == captures and screenshot.suffix == ".png"
    assert f"screenshot: {screenshot}" in done.stdout
    image = cv2.cvtColor(cv2.imread(str(screenshot)), cv2.COLOR_BGR2RGB)
    assert image.shape == (300, 900, 3) and int(image.astype("int64").sum()) == found["screen_sum"]
    # the recording holds the 12 views shown while it ran, at the view's own size
    recording = Path(found["recording"])
    assert recording.parent == captures and f"recorded 12 frames: {recording}" in done.stdout
    with av.open(str(recording)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 12 and frames[0].shape == (96, 96, 3)
    assert frames[0][:, :40].mean() > 150 and frames[11][:, :40].mean() < 50  # the edge moved


# Rides the real game in a window, pressing H after a few frames and F12 near the end.
RIDE_SCRIPT = r"""
import sys
import pygame
from src.game.display import GameWindow
from src.game.session import run_session
from src.game.config import PlayConfig

class ScriptedWindow(GameWindow):
    frames = 0
    def poll(self):
        self.frames += 1
        for frame, key in ((3, pygame.K_h), (int(sys.argv[2]) - 2, pygame.K_F12)):
            if self.frames == frame:
                pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="", scancode=0))
        return super().poll()

frames = int(sys.argv[2])
config = PlayConfig(frames=frames, autopilot=True, resolution="160x120", seed=3)
run_session(config, window_factory=lambda session: ScriptedWindow(session.width, session.height, capture_dir=sys.argv[1]))
"""


@pytest.mark.window
def test_a_ride_in_a_window_saves_a_screenshot_with_the_key_list(xvfb_display, tmp_path):
    import cv2

    captures = tmp_path / "captures"
    done = subprocess.run(
        [sys.executable, "-c", RIDE_SCRIPT, str(captures), "40"],
        cwd=ROOT,
        env=_on_display(xvfb_display),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (screenshot,) = captures.glob("*.png")
    assert f"screenshot: {screenshot}" in done.stdout
    image = cv2.imread(str(screenshot))
    assert image.shape == (720, 960, 3)  # 160x120 scaled 6x
    assert image.std() > 20  # the boulevard, not a blank window
