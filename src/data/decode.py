"""Video decoding with PyAV: any container FFmpeg's libraries read (mp4, avi, mkv, webm, mov),
resampled to a target frame rate, optionally trimmed, centre-cropped to the target aspect and
resized with an antialiasing filter. A stream's display rotation (a phone's portrait or upside-down
recording) is applied first, so frames come out upright.

Frames come back as one ``t h w 3`` uint8 RGB array (``decode_video``) or one at a time
(``iter_video_frames``, memory flat in the video's length). Each video is then split in time into a
training part and a held-out validation part (the last ``val_fraction`` of its frames), so that
validation never sees a training frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from src.common.config import parse_resolution
from src.common.errors import UserError
from src.data.config import DecodeConfig  # the settings live apart, free of cv2 and av

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ts")


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


@dataclasses.dataclass
class DecodeReport:
    """How much of a video's stream decoded, against what its container declares."""

    path: str
    decoded_frames: int = 0  # source frames decoded, counted from the start of the stream
    expected_frames: int | None = None  # the container's frame count (or duration x frame rate)
    expected_is_exact: bool = False  # the container states a frame count (not derived from duration)
    error: str | None = None  # the decoder's message where the stream broke off
    reached_end: bool = False  # decoding ran to the end of the stream (not stopped by a trim)

    @property
    def ended_early(self) -> bool:
        """The stream ended before the frames its container promised (a truncated or broken file)."""
        if not self.reached_end or self.expected_frames is None:
            return False
        tolerance = 0 if self.expected_is_exact else 1  # a duration rounds to within a frame
        return self.decoded_frames < self.expected_frames - tolerance

    def to_dict(self) -> dict:
        return {
            "decoded_source_frames": self.decoded_frames,
            "expected_source_frames": self.expected_frames,
            "ended_early": self.ended_early,
            "decode_error": self.error,
        }


def _declared_frames(stream, container) -> tuple[int | None, bool]:
    """The frame count the container declares (exact), else duration x rate (estimate), else None."""
    if stream.frames and stream.frames > 0:
        return int(stream.frames), True
    rate = float(stream.average_rate or stream.guessed_rate or 0)
    duration_s = None
    if stream.duration is not None and stream.time_base is not None:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration_s = container.duration / 1_000_000
    if rate > 0 and duration_s:
        return round(duration_s * rate), False
    return None, False


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """``image`` (h w c) as it is meant to be shown: turned by its display matrix's ``rotation``
    (PyAV's ``frame.rotation``, counter-clockwise degrees, as phones write it), as ffmpeg's own
    autorotate does. Only quarter turns occur in practice; others round to the nearest."""
    clockwise_quarter_turns = round(-rotation / 90) % 4
    if clockwise_quarter_turns == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=-clockwise_quarter_turns))


def iter_source_frames(
    path: str | Path, *, start_s: float = 0.0, report: DecodeReport | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """(time in seconds, h w 3 uint8 RGB) for each decoded frame, from about ``start_s`` on.

    A stream that breaks off after at least one frame (a truncated file) ends the iteration
    there instead of failing; ``report``, when given, says how far decoding got against what
    the container declares.
    """
    import av

    container = _open(path)
    report = report if report is not None else DecodeReport(str(path))
    index = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        report.expected_frames, report.expected_is_exact = _declared_frames(stream, container)
        seeked = start_s > 1.0 and stream.time_base is not None
        if seeked:
            container.seek(int(start_s / stream.time_base), stream=stream, backward=True, any_frame=False)
        first_time = None
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        for frame in container.decode(stream):
            if frame.time is not None:
                time = float(frame.time)
            else:  # no timestamps (some avi): count frames
                time = index / rate
            # after a seek the count starts where the decoder landed
            report.decoded_frames = round(time * rate) + 1 if seeked else index + 1
            if first_time is None and start_s <= 1.0:
                first_time = time  # streams that do not start at 0
            if first_time is not None:
                time -= first_time
            index += 1
            yield time, upright(frame.to_ndarray(format="rgb24"), frame.rotation)
        report.reached_end = True
    except av.FFmpegError as error:
        if index == 0:
            raise UserError(
                f"decoding {path} failed after {index} frames: {error}",
                "The file is corrupt or truncated; re-download or re-encode it.",
            ) from None
        report.error = str(error).splitlines()[0] if str(error) else type(error).__name__
        report.reached_end = True  # the stream ends where it broke off
    finally:
        container.close()


def decode_video(path: str | Path, config: DecodeConfig) -> np.ndarray:
    """All output frames of one video as ``t h w 3`` uint8 RGB at ``config.fps`` and resolution.

    Each output time ``start_s + k / fps`` takes the source frame nearest to it; when the target
    rate is above the source rate frames repeat (see ``DecodeConfig.fps``).
    """
    return decode_video_with_report(path, config)[0]


def decode_video_with_report(
    path: str | Path, config: DecodeConfig, *, on_frame: Callable[[], None] | None = None
) -> tuple[np.ndarray, DecodeReport]:
    """``decode_video`` plus how much of the stream decoded against what the container declares.
    ``on_frame`` is called once per output frame (a progress bar). Holds the whole video in memory:
    ``iter_video_frames`` streams it instead."""
    report = DecodeReport(str(path))
    out = []
    for frame in iter_video_frames(path, config, report=report):
        out.append(frame)
        if on_frame is not None:
            on_frame()
    return np.stack(out), report


def iter_video_frames(
    path: str | Path, config: DecodeConfig, *, report: DecodeReport | None = None
) -> Iterator[np.ndarray]:
    """The output frames of ``decode_video`` one at a time (h w 3 uint8), holding at most two
    source frames and no output frame in memory; ``report`` is filled in as decoding goes."""
    width, height = parse_resolution(config.resolution)
    emitted = 0
    previous: tuple[float, np.ndarray] | None = None
    report = report if report is not None else DecodeReport(str(path))

    def output_time(k: int) -> float:
        return config.start_s + k / config.fps

    def finished() -> bool:  # the trim end is exclusive: [start_s, end_s)
        if config.max_frames is not None and emitted >= config.max_frames:
            return True
        return config.end_s is not None and output_time(emitted) >= config.end_s - 1e-9

    for time, frame in iter_source_frames(path, start_s=config.start_s, report=report):
        if finished():
            report.reached_end = False  # trimmed: the rest was not decoded
            break
        # emit every output time that lies before this frame, choosing the nearer neighbour
        while not finished() and time >= output_time(emitted) - 1e-6:
            target = output_time(emitted)
            nearer_previous = previous is not None and abs(previous[0] - target) < abs(time - target)
            emitted += 1
            yield center_crop_resize(previous[1] if nearer_previous else frame, width, height)
        previous = (time, frame)
    if not emitted:
        raise UserError(
            f"{path}: no frames between {config.start_s}s and {config.end_s or 'the end'}",
            "Check start_s/end_s against the video's length.",
        )


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
