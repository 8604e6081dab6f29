"""Video decoding with PyAV: any container FFmpeg's libraries read (mp4, avi, mkv, webm, mov),
resampled to a target frame rate, optionally trimmed, centre-cropped to the target aspect and
resized with an antialiasing filter.

Frames come back as one ``t h w 3`` uint8 RGB array. Each video is then split in time into a
training part and a held-out validation part (the last ``val_fraction`` of its frames), so that
validation never sees a training frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from src.common.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ts")


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
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    duration_s: float | None
    codec: str


def _open(path: str | Path):
    import av

    path = Path(path)
    if not path.is_file():
        raise UserError(f"video not found: {path}", "Check the path.")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as error:
        raise UserError(
            f"cannot open video {path}: {error}",
            "The file is corrupt, truncated or not a video; re-download or re-encode it.",
        ) from None
    if not container.streams.video:
        container.close()
        raise UserError(f"{path} has no video stream", "Pass a file with video in it.")
    return container


def probe_video(path: str | Path) -> VideoInfo:
    """Size, frame rate, duration and codec of the first video stream."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        return VideoInfo(
            str(path), stream.width, stream.height, float(rate or 0.0), duration, stream.codec_context.name
        )
    finally:
        container.close()


def center_crop_resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop ``frame`` (h w c) to the aspect ``width/height`` and resize with area averaging
    (antialiased when shrinking, bicubic when enlarging)."""
    h, w = frame.shape[:2]
    target_aspect = width / height
    if w / h > target_aspect:  # too wide: crop columns
        crop_w = max(1, round(h * target_aspect))
        x0 = (w - crop_w) // 2
        frame = frame[:, x0 : x0 + crop_w]
    else:
        crop_h = max(1, round(w / target_aspect))
        y0 = (h - crop_h) // 2
        frame = frame[y0 : y0 + crop_h]
    if frame.shape[1] == width and frame.shape[0] == height:
        return np.ascontiguousarray(frame)
    shrinking = frame.shape[1] > width
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def iter_source_frames(path: str | Path, *, start_s: float = 0.0) -> Iterator[tuple[float, np.ndarray]]:
    """(time in seconds, h w 3 uint8 RGB) for each decoded frame, from about ``start_s`` on."""
    import av

    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if start_s > 1.0 and stream.time_base is not None:
            container.seek(int(start_s / stream.time_base), stream=stream, backward=True, any_frame=False)
        first_time = None
        index = 0
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        for frame in container.decode(stream):
            if frame.time is not None:
                time = float(frame.time)
            else:  # no timestamps (some avi): count frames
                time = index / rate
            if first_time is None and start_s <= 1.0:
                first_time = time  # streams that do not start at 0
            if first_time is not None:
                time -= first_time
            index += 1
            yield time, frame.to_ndarray(format="rgb24")
    except av.FFmpegError as error:
        raise UserError(
            f"decoding {path} failed after {index} frames: {error}",
            "The file is corrupt or truncated; re-download or re-encode it.",
        ) from None
    finally:
        container.close()


def decode_video(path: str | Path, config: DecodeConfig) -> np.ndarray:
    """All output frames of one video as ``t h w 3`` uint8 RGB at ``config.fps`` and resolution.

    Each output time ``start_s + k / fps`` takes the source frame nearest to it; when the target
    rate is above the source rate frames repeat (see ``DecodeConfig.fps``).
    """
    from src.common.config import parse_resolution

    width, height = parse_resolution(config.resolution)
    out: list[np.ndarray] = []
    previous: tuple[float, np.ndarray] | None = None

    def output_time(k: int) -> float:
        return config.start_s + k / config.fps

    def finished() -> bool:  # the trim end is exclusive: [start_s, end_s)
        if config.max_frames is not None and len(out) >= config.max_frames:
            return True
        return config.end_s is not None and output_time(len(out)) >= config.end_s - 1e-9

    for time, frame in iter_source_frames(path, start_s=config.start_s):
        if finished():
            break
        # emit every output time that lies before this frame, choosing the nearer neighbour
        while not finished() and time >= output_time(len(out)) - 1e-6:
            target = output_time(len(out))
            nearer_previous = previous is not None and abs(previous[0] - target) < abs(time - target)
            out.append(center_crop_resize(previous[1] if nearer_previous else frame, width, height))
        previous = (time, frame)
    if not out:
        raise UserError(
            f"{path}: no frames between {config.start_s}s and {config.end_s or 'the end'}",
            "Check start_s/end_s against the video's length.",
        )
    return np.stack(out)


def split_index(num_frames: int, val_fraction: float) -> int:
    """The first validation frame: frames ``[0, i)`` train, ``[i, n)`` validation."""
    if val_fraction <= 0:
        return num_frames
    num_val = max(1, round(num_frames * val_fraction))
    return max(0, num_frames - num_val)


def find_videos(paths: list[str | Path]) -> list[Path]:
    """Video files named by ``paths`` (files, or folders searched recursively), sorted."""
    found: list[Path] = []
    for item in paths:
        item = Path(item)
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        elif item.is_file():
            found.append(item)
        else:
            raise UserError(f"no such file or folder: {item}", "Pass video files or folders with --videos.")
    if not found:
        raise UserError(
            f"no videos found in {', '.join(str(p) for p in paths)}",
            f"Video files end in {', '.join(VIDEO_SUFFIXES)}.",
        )
    return found
