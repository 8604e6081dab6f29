"""A digest of everything that decides what the game renders: its code, shaders, levels and
measured palette. A recorded G-buffer clip carries it, so a clip recorded by an older game is
recorded again instead of being reused as if it were today's street."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GAME_SOURCES = ("src/game/*.py", "game/shaders/*", "game/levels/*.yaml", "game/*.yaml")


@functools.cache
def game_digest() -> str:
    """sha256 (16 hex digits) over the game's source files, by path and content."""
    digest = hashlib.sha256()
    for pattern in GAME_SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            if path.is_file():
                digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
