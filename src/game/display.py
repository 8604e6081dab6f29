"""The pygame window: shows one RGB view scaled up, draws the HUD, and reads the keyboard.

Keys: arrows / WASD steer (left/right) and pedal/brake (up/down), P pause, R restart,
Tab next view (Shift+Tab previous), Esc or closing the window quits.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from src.common.errors import UserError
from src.game.world import Action


@dataclasses.dataclass
class InputState:
    quit: bool = False
    toggle_pause: bool = False
    restart: bool = False
    view_step: int = 0  # +1 next view, -1 previous
    action: Action = dataclasses.field(default_factory=Action)


class GameWindow:
    def __init__(self, width: int, height: int, *, scale: int = 0, title: str = "Velodream"):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        # The game renders offscreen through its own (EGL) OpenGL context and only blits the
        # result: SDL must not make a GLX context of its own for the window's framebuffer, which
        # fails on X11 (BadAccess in glXMakeCurrent) once the EGL context exists.
        os.environ.setdefault("SDL_FRAMEBUFFER_ACCELERATION", "0")
        import pygame

        self.pygame = pygame
        try:
            pygame.display.init()
            pygame.font.init()
            self.scale = scale or max(1, 720 // height)
            self.size = (width * self.scale, height * self.scale)
            self.screen = pygame.display.set_mode(self.size)
        except pygame.error as error:
            raise UserError(f"cannot open a window: {error}",
                            "Run with --headless (and --frames N) on a machine without a display.") from None
        pygame.display.set_caption(title)
        self.font = pygame.font.Font(None, max(18, self.size[1] // 28))
        self.big_font = pygame.font.Font(None, max(32, self.size[1] // 9))
        self.clock = pygame.time.Clock()

    def poll(self) -> InputState:
        pg = self.pygame
        state = InputState()
        for event in pg.event.get():
            if event.type == pg.QUIT:
                state.quit = True
            elif event.type == pg.KEYDOWN:
                if event.key == pg.K_ESCAPE:
                    state.quit = True
                elif event.key == pg.K_p:
                    state.toggle_pause = True
                elif event.key == pg.K_r:
                    state.restart = True
                elif event.key == pg.K_TAB:
                    state.view_step = -1 if event.mod & pg.KMOD_SHIFT else 1
        keys = pg.key.get_pressed()
        steer = float(keys[pg.K_RIGHT] or keys[pg.K_d]) - float(keys[pg.K_LEFT] or keys[pg.K_a])
        throttle = float(keys[pg.K_UP] or keys[pg.K_w]) - float(keys[pg.K_DOWN] or keys[pg.K_s])
        state.action = Action(steer=steer, throttle=throttle)
        return state

    def show(self, rgb: np.ndarray, hud_lines: list[str], banner: str | None = None) -> None:
        pg = self.pygame
        surface = pg.image.frombuffer(np.ascontiguousarray(rgb).tobytes(), (rgb.shape[1], rgb.shape[0]), "RGB")
        # fit the view into the window keeping its aspect (side-by-side views are wider)
        fit = min(self.size[0] / rgb.shape[1], self.size[1] / rgb.shape[0])
        scaled = (max(1, round(rgb.shape[1] * fit)), max(1, round(rgb.shape[0] * fit)))
        if scaled != self.size:
            self.screen.fill((0, 0, 0))
        self.screen.blit(pg.transform.scale(surface, scaled),
                         ((self.size[0] - scaled[0]) // 2, (self.size[1] - scaled[1]) // 2))
        y = 6
        for line in hud_lines:
            self._text(self.font, line, (8, y))
            y += self.font.get_linesize()
        if banner:
            width, height = self.big_font.size(banner)
            self._text(self.big_font, banner, ((self.size[0] - width) // 2, (self.size[1] - height) // 2))
        pg.display.flip()

    def _text(self, font, text: str, position: tuple[int, int]) -> None:
        shadow = font.render(text, True, (0, 0, 0))
        self.screen.blit(shadow, (position[0] + 2, position[1] + 2))
        self.screen.blit(font.render(text, True, (255, 255, 255)), position)

    def tick(self, fps: int) -> float:
        """Wait for the next frame slot; returns the measured frames per second."""
        self.clock.tick(fps)
        return self.clock.get_fps()

    def close(self) -> None:
        self.pygame.display.quit()
        self.pygame.quit()
