"""Checks of a ride's settings that run before a model is loaded or a window opened.

Each bad value is one line (``UserError``) within a moment of starting: a zero frame rate, a
negative frame count, no denoising steps, a resolution that is not WIDTHxHEIGHT, or a window
asked for where no display can show it. Checks that need the model (a resolution that is not a
multiple of its patch or beyond its grid) run once the package is loaded (``neural_frame_size``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from src.common.errors import UserError
from src.game.display import require_visible_display
from src.game.session import check_play_config

if TYPE_CHECKING:
    from src.play.ride import RideConfig


def check_ride_config(config: RideConfig) -> None:
    """Raise a UserError for settings of ``play_game`` that cannot work (see the module docstring)."""
    check_play_config(config)
    if config.steps is not None and config.steps < 1:
        raise UserError(f"invalid --steps {config.steps}", "Give at least 1 denoising step per framelet.")
    if not config.headless:
        require_visible_display()
