"""The settings of video decoding, of ``prepare_data`` and of ``make_flythroughs``, apart from
the code that runs them.

No torch, cv2 or av is imported here, so that ``prepare_data --help`` (which reads these
dataclasses) answers at once; ``decode.py`` and ``prepare.py`` import these classes back, so
``from src.data.prepare import PrepareConfig`` keeps working.
"""

from __future__ import annotations

import dataclasses

from src.common.config import parse_resolution
from src.common.errors import UserError
from src.conditions.config import ExtractConfig


@dataclasses.dataclass
class DecodeConfig:
    """How a video becomes frames."""

    fps: float = 10.0
    """output frames per second (nearest source frame for each output time)"""
    resolution: str = "96x96"
    """WIDTHxHEIGHT after centre crop to this aspect and antialiased resize"""
    start_s: float = 0.0
    """trim: first second used"""
    end_s: float | None = None
    """trim: last second used (None = to the end)"""
    val_fraction: float = 0.15
    """the last fraction of each video's frames is held out for validation"""
    max_frames: int | None = None
    """stop after this many output frames (None = all)"""

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise UserError(f"decode fps must be positive, got {self.fps}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UserError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.end_s is not None and self.end_s <= self.start_s:
            raise UserError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")


@dataclasses.dataclass
class PrepareConfig:
    """``prepare_data``: which videos, where to, at which resolution and rate, with which extractors."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "fps": "(0, inf)",
        "start_s": "[0, inf)",
        "end_s": "(0, inf)",
        "val_fraction": "[0, 1)",
        "max_frames": "[1, inf)",
        "shard_frames": "[1, inf)",
        "stats_pixels_per_frame": "[1, inf)",
    }

    videos: list[str] = dataclasses.field(default_factory=list)
    """video files, folders (searched recursively), lists of them (.txt/.urls) or URLs (downloaded with
    yt-dlp into the cache, resumably): --videos a.mp4 dir https://host/ride.mp4"""
    out: str = "data/prepared/default"
    """the prepared dataset folder to write (re-running resumes it)"""
    defaults: bool = False
    """add the real street clips shipped in public packages (bikes.mp4, vtest.avi) to --videos"""
    resolution: str = "96x96"
    """WIDTHxHEIGHT of the prepared frames (centre crop to this aspect, then resize)"""
    fps: float = 10.0
    """frames per second after resampling (10, not 12: vtest.avi is 10 fps, and 12 would repeat every 5th frame)"""
    start_s: float = 0.0
    """trim: first second of each video used"""
    end_s: float | None = None
    """trim: last second of each video used (None: to the end)"""
    val_fraction: float = 0.15
    """the last fraction of each video's frames, held out for validation"""
    max_frames: int | None = None
    """at most this many frames per video, after resampling (None: all)"""
    shard_frames: int = 64
    """frames per shard"""
    stats_pixels_per_frame: int = 512
    """pixels sampled per training frame for the statistics"""
    extract: ExtractConfig = dataclasses.field(default_factory=ExtractConfig)
    """the extractors that turn real frames into G-buffer channels"""

    def decode_config(self) -> DecodeConfig:
        parse_resolution(self.resolution)
        return DecodeConfig(
            fps=self.fps,
            resolution=self.resolution,
            start_s=self.start_s,
            end_s=self.end_s,
            val_fraction=self.val_fraction,
            max_frames=self.max_frames,
        )


@dataclasses.dataclass
class FlythroughConfig:
    """``make_flythroughs``: real photos -> one forward-zooming mp4 per photo."""

    RANGES = {
        "frames": "[2, inf)",
        "fps": "(0, inf)",
        "zoom": "[1, 16]",
        "focus_x": "[0, 1]",
        "focus_y": "[0, 1]",
    }

    photos: str = "mvtb"
    """'mvtb' (the outdoor photos of PyPI's mvtb-data, MIT; its campus/holdout photos are left
    out), or a folder of .png/.jpg photos"""
    out: str = "data/flythroughs"
    """the folder the mp4s go to (one per photo, named after it)"""
    frames: int = 40
    """frames per clip"""
    fps: float = 10.0
    """frame rate written into the mp4s (prepare_data resamples to its own)"""
    zoom: float = 1.6
    """how much the picture is magnified from the first frame to the last"""
    resolution: str = "448x448"
    """WIDTHxHEIGHT of the clips (prepare_data resizes and crops them to its resolution)"""
    focus_x: float = 0.5
    """the focus of expansion across the photo (0 left edge, 1 right edge)"""
    focus_y: float = 0.5
    """the focus of expansion down the photo (0 top, 1 bottom)"""
