"""The size of a frame as code passes it around: ``FrameSize(width, height)``.

Configs and flags keep a frame size as the text ``WIDTHxHEIGHT``; it is parsed once, where the
config is read, and the code below takes the parsed value. Plain Python, no torch.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from src.common.errors import UserError

MIN_SIDE, MAX_SIDE = 8, 8192


class FrameSize(NamedTuple):
    """A frame's (width, height) in pixels; ``str`` gives ``WIDTHxHEIGHT``."""

    width: int
    height: int

    @classmethod
    def parse(cls, text: str, *, what: str = "resolution") -> FrameSize:
        """'320x240' -> FrameSize(320, 240); anything else is a UserError that names ``what``."""
        match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
        if not match:
            raise UserError(f"invalid {what} '{text}'", "Write it as WIDTHxHEIGHT, for example 320x240.")
        width, height = int(match.group(1)), int(match.group(2))
        if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
            raise UserError(
                f"invalid {what} '{text}': each side must be between {MIN_SIDE} and {MAX_SIDE} pixels"
            )
        return cls(width, height)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"
