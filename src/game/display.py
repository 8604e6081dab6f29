"""The pygame window: shows one RGB view scaled to fit, draws the HUD, reads the keyboard.

Game keys (returned by ``poll``): arrows / WASD steer (left/right) and pedal/brake (up/down),
P pause, R restart, Tab next view (Shift+Tab previous), Esc or closing the window quits.
Window keys (handled here): H lists the keys in the HUD, N switches between smooth (bilinear,
the default) and nearest-neighbour scaling, F11 full screen, F12 saves a screenshot PNG of the
window, V starts and stops an mp4 recording of the shown view at its own resolution. Captures go
to ``captures/`` and their paths are printed.

The window is resizable; the view keeps its aspect ratio (black bars fill the rest). When no
display is reachable, SDL would silently open an invisible window: ``require_visible_display``
turns that into a one-line error that names the headless command instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from src.common.errors import UserError
from src.common.video import Mp4Writer, save_png
from src.game.world import Action

# SDL's video drivers that show nothing: chosen silently when no display can be reached
INVISIBLE_DRIVERS = ("offscreen", "dummy")
HEADLESS_COMMAND = (
    "uv run python -m src.scripts.play_game --headless --autopilot --frames 300 --record ride.mp4"
)
CAPTURE_DIR = "captures"
KEY_HELP = (
    ("arrows / WASD", "steer, pedal, brake"),
    ("Tab / Shift+Tab", "next / previous view"),
    ("P", "pause"),
    ("R", "restart"),
    ("N", "smooth / nearest scaling"),
    ("F11", "full screen"),
    ("F12", "screenshot (PNG)"),
    ("V", "start / stop recording (mp4)"),
    ("H", "hide these keys"),
    ("Esc", "quit"),
)


def _no_display_error(driver: str | None) -> UserError:
    shown = ", ".join(f"{name}={os.environ.get(name) or 'unset'}" for name in ("DISPLAY", "WAYLAND_DISPLAY"))
    fallback = (
        f"SDL would fall back to its invisible '{driver}' driver" if driver else "SDL found no video driver"
    )
    return UserError(
        f"no display to open a window on ({shown}; {fallback})",
        f"Ride without a window: {HEADLESS_COMMAND} (or set SDL_VIDEODRIVER to choose a video driver).",
    )


# What SDL writes to stderr while it tries its Wayland driver with no usable runtime folder: it then
# goes on to X11 or finds no display (which require_visible_display reports itself), so the line
# tells the user nothing they can act on.
SDL_NOISE = ("XDG_RUNTIME_DIR is invalid or not set in the environment.",)


@contextlib.contextmanager
def _without_sdl_noise():
    """Run SDL's video initialisation with its stderr (fd 2) held back; pass on every line that
    is not one of SDL_NOISE."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode(errors="replace").splitlines():
                if not any(noise in line for noise in SDL_NOISE):
                    print(line, file=sys.stderr)


def require_visible_display() -> None:
    """Raise a UserError unless SDL can open a window someone can see.

    An explicit ``SDL_VIDEODRIVER`` always wins (tests and benchmarks ask for ``dummy``); without
    one, SDL picks the first driver that works, which is ``offscreen`` when neither X11 nor
    Wayland can be reached. Takes milliseconds and leaves the display uninitialised.
    """
    if os.environ.get("SDL_VIDEODRIVER"):
        return
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    was_initialised = pygame.display.get_init()
    try:
        with _without_sdl_noise():
            pygame.display.init()
        driver = pygame.display.get_driver()
    except pygame.error:
        driver = None
    finally:
        if not was_initialised:
            pygame.display.quit()
    if driver is None or driver in INVISIBLE_DRIVERS:
        raise _no_display_error(driver)


@dataclasses.dataclass
class InputState:
    quit: bool = False
    toggle_pause: bool = False
    restart: bool = False
    view_step: int = 0  # +1 next view, -1 previous
    action: Action = dataclasses.field(default_factory=Action)


def _capture_path(directory: Path, suffix: str) -> Path:
    """``captures/velodream-YYYYmmdd-HHMMSS[-N].suffix``, a name not taken yet."""
    stem = "velodream-" + time.strftime("%Y%m%d-%H%M%S")
    path = directory / f"{stem}{suffix}"
    number = 1
    while path.exists():
        number += 1
        path = directory / f"{stem}-{number}{suffix}"
    return path


class GameWindow:
    def __init__(
        self,
        width: int,
        height: int,
        *,
        scale: int = 0,
        title: str = "Velodream",
        fps: float = 30.0,
        capture_dir: str | Path = CAPTURE_DIR,
    ):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        # The game renders offscreen through its own (EGL) OpenGL context and only blits the
        # result: SDL must not make a GLX context of its own for the window's framebuffer, which
        # fails on X11 (BadAccess in glXMakeCurrent) once the EGL context exists.
        os.environ.setdefault("SDL_FRAMEBUFFER_ACCELERATION", "0")
        import pygame

        self.pygame = pygame
        try:
            with _without_sdl_noise():
                pygame.display.init()
            if not os.environ.get("SDL_VIDEODRIVER") and pygame.display.get_driver() in INVISIBLE_DRIVERS:
                driver = pygame.display.get_driver()
                pygame.display.quit()
                raise _no_display_error(driver)
            pygame.font.init()
            self.scale = scale or max(1, 720 // height)
            self.windowed_size = (width * self.scale, height * self.scale)
            self.screen = pygame.display.set_mode(self.windowed_size, pygame.RESIZABLE)
        except pygame.error as error:
            raise UserError(
                f"cannot open a window: {error}", f"Ride without a window: {HEADLESS_COMMAND}."
            ) from None
        pygame.display.set_caption(title)
        self.fps = fps
        self.capture_dir = Path(capture_dir)
        self.smooth = True  # bilinear scaling; N switches to nearest neighbour
        self.show_keys = False
        self.fullscreen = False
        self._screenshot_requested = False
        self._recording_toggle_requested = False
        self.recorder = None  # an Mp4Writer while V is recording
        self.last_screenshot: Path | None = None
        self.last_recording: Path | None = None
        self._fonts_for_height = 0
        self._update_fonts()
        self.clock = pygame.time.Clock()

    @property
    def size(self) -> tuple[int, int]:
        return self.screen.get_size()

    def _update_fonts(self) -> None:
        height = self.size[1]
        if height != self._fonts_for_height:
            self.font = self.pygame.font.Font(None, max(18, height // 28))
            self.big_font = self.pygame.font.Font(None, max(32, height // 9))
            self._fonts_for_height = height

    def poll(self) -> InputState:
        pg = self.pygame
        state = InputState()
        for event in pg.event.get():
            if event.type == pg.QUIT:
                state.quit = True
            elif event.type in (pg.VIDEORESIZE, pg.WINDOWSIZECHANGED) and not self.fullscreen:
                # pygame 2 resizes the surface of a RESIZABLE window itself; remember the size for
                # leaving full screen (from the window, not the event: events lag behind F11)
                self.windowed_size = pg.display.get_window_size()
            elif event.type == pg.KEYDOWN:
                if event.key == pg.K_ESCAPE:
                    state.quit = True
                elif event.key == pg.K_p:
                    state.toggle_pause = True
                elif event.key == pg.K_r:
                    state.restart = True
                elif event.key == pg.K_TAB:
                    state.view_step = -1 if event.mod & pg.KMOD_SHIFT else 1
                elif event.key == pg.K_h:
                    self.show_keys = not self.show_keys
                elif event.key == pg.K_n:
                    self.smooth = not self.smooth
                elif event.key == pg.K_F11:
                    self.toggle_fullscreen()
                elif event.key == pg.K_F12:
                    self._screenshot_requested = True  # taken once the next frame is drawn
                elif event.key == pg.K_v:
                    self._recording_toggle_requested = True  # the next view's size starts the video
        keys = pg.key.get_pressed()
        steer = float(keys[pg.K_RIGHT] or keys[pg.K_d]) - float(keys[pg.K_LEFT] or keys[pg.K_a])
        throttle = float(keys[pg.K_UP] or keys[pg.K_w]) - float(keys[pg.K_DOWN] or keys[pg.K_s])
        state.action = Action(steer=steer, throttle=throttle)
        return state

    def toggle_fullscreen(self) -> None:
        pg = self.pygame
        self.fullscreen = not self.fullscreen
        if self.fullscreen:
            self.screen = pg.display.set_mode((0, 0), pg.FULLSCREEN)  # the desktop's size
        else:
            pg.display.set_mode(self.windowed_size, pg.RESIZABLE)
            # leaving full screen, SDL may restore the full-screen size: the second call sizes the
            # window that is now windowed
            self.screen = pg.display.set_mode(self.windowed_size, pg.RESIZABLE)

    def show(self, rgb: np.ndarray, hud_lines: list[str], banner: str | None = None) -> None:
        """Draw the view (h w 3 uint8) fitted into the window, the HUD and an optional banner."""
        pg = self.pygame
        self.screen = pg.display.get_surface()
        self._update_fonts()
        if self._recording_toggle_requested:
            self._recording_toggle_requested = False
            if self.recorder is not None:
                self.stop_recording()
            else:
                self._capture(self.start_recording, rgb.shape[1], rgb.shape[0])
        if self.recorder is not None:
            self.recorder.write(self._fit_to(rgb, (self.recorder.width, self.recorder.height)))
        surface = pg.image.frombuffer(
            np.ascontiguousarray(rgb).tobytes(), (rgb.shape[1], rgb.shape[0]), "RGB"
        )
        width, height = self.size
        # fit the view into the window keeping its aspect (side-by-side views are wider)
        fit = min(width / rgb.shape[1], height / rgb.shape[0])
        scaled = (max(1, round(rgb.shape[1] * fit)), max(1, round(rgb.shape[0] * fit)))
        self.screen.fill((0, 0, 0))
        scale = pg.transform.smoothscale if self.smooth else pg.transform.scale
        self.screen.blit(scale(surface, scaled), ((width - scaled[0]) // 2, (height - scaled[1]) // 2))
        y = 6
        for line in self.hud_text(hud_lines):
            self._text(self.font, line, (8, y))
            y += self.font.get_linesize()
        if banner:
            banner_w, banner_h = self.big_font.size(banner)
            self._text(self.big_font, banner, ((width - banner_w) // 2, (height - banner_h) // 2))
        pg.display.flip()
        if self._screenshot_requested:
            self._screenshot_requested = False
            self._capture(self.save_screenshot)

    @staticmethod
    def _capture(start, *args) -> None:
        """Run a capture; a folder that cannot be written is said in one line, the ride goes on."""
        try:
            start(*args)
        except (UserError, OSError) as error:
            message = error.one_line() if isinstance(error, UserError) else str(error)
            print(f"capture failed: {message}", flush=True)

    def hud_text(self, hud_lines: list[str]) -> list[str]:
        """The HUD lines the window draws: the game's, then recording state and the keys (on H)."""
        lines = list(hud_lines)
        if self.recorder is not None:
            lines.append(f"REC {self.recorder.num_frames / self.fps:5.1f} s (V stops)")
        if self.show_keys:
            lines += [f"{key}: {what}" for key, what in KEY_HELP]
            lines.append(f"scaling: {'smooth' if self.smooth else 'nearest'}")
        else:
            lines.append("H: keys")
        return lines

    def _fit_to(self, rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``rgb`` letterboxed into ``size`` (a recording keeps its size when the view changes)."""
        if (rgb.shape[1], rgb.shape[0]) == size:
            return rgb
        pg = self.pygame
        surface = pg.image.frombuffer(
            np.ascontiguousarray(rgb).tobytes(), (rgb.shape[1], rgb.shape[0]), "RGB"
        )
        fit = min(size[0] / rgb.shape[1], size[1] / rgb.shape[0])
        scaled = (max(1, round(rgb.shape[1] * fit)), max(1, round(rgb.shape[0] * fit)))
        canvas = pg.Surface(size, depth=24)
        canvas.fill((0, 0, 0))
        canvas.blit(
            pg.transform.smoothscale(surface, scaled),
            ((size[0] - scaled[0]) // 2, (size[1] - scaled[1]) // 2),
        )
        return pg.surfarray.array3d(canvas).transpose(1, 0, 2)  # w h 3 -> h w 3

    def screen_rgb(self) -> np.ndarray:
        """What the window shows now, ``h w 3`` uint8 RGB."""
        return self.pygame.surfarray.array3d(self.screen).transpose(1, 0, 2).copy()

    def save_screenshot(self) -> Path:
        """Save the window's contents as a PNG under the capture folder; prints and returns its path."""
        path = save_png(_capture_path(self.capture_dir, ".png"), self.screen_rgb())
        self.last_screenshot = path
        print(f"screenshot: {path}", flush=True)
        return path

    def start_recording(self, width: int, height: int) -> Path:
        """Start an mp4 of the shown view at ``width`` x ``height`` (the view's own size)."""
        path = _capture_path(self.capture_dir, ".mp4")
        self.capture_dir.mkdir(parents=True, exist_ok=True)
        self.recorder = Mp4Writer(path, fps=self.fps, width=width, height=height)
        print(f"recording: {path} (V stops)", flush=True)
        return path

    def stop_recording(self) -> Path | None:
        """Finish the recording (if any); prints and returns its path."""
        if self.recorder is None:
            return None
        recorder, self.recorder = self.recorder, None
        path = recorder.close()
        self.last_recording = path
        print(f"recorded {recorder.num_frames} frames: {path}", flush=True)
        return path

    def _text(self, font, text: str, position: tuple[int, int]) -> None:
        shadow = font.render(text, True, (0, 0, 0))
        self.screen.blit(shadow, (position[0] + 2, position[1] + 2))
        self.screen.blit(font.render(text, True, (255, 255, 255)), position)

    def tick(self, fps: int) -> float:
        """Wait for the next frame slot; returns the measured frames per second."""
        self.clock.tick(fps)
        return self.clock.get_fps()

    def close(self) -> None:
        try:
            self.stop_recording()
        finally:
            self.pygame.display.quit()
            self.pygame.quit()
