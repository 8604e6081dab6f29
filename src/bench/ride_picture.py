"""The README's ride picture: frames of a recorded game ride, renderer by renderer, beside real
city footage of the kind of street the game shows.

    uv run python -m src.scripts.play_game --headless --autopilot --frames 300 \\
        --record_side_by_side runs/ride_city_sbs.mp4
    uv run python -m src.bench.ride_picture --ride runs/ride_city_sbs.mp4 \\
        --real ../shared/data/city_videos/city_street_pandaset002_back_reversed.mp4 --out game/ride_city.png \\
        --video_out game/ride_city.mp4

A side-by-side recording holds one square panel per renderer, then the raster and its depth
(``src/play/ride.py`` ``side_by_side``); ``--panels`` names them in that order and ``--order``
picks and orders the ones drawn. Each row is one moment of the ride (``--times``, seconds), with
the real clip's frame at the same fraction of its length, centre-cropped to a square, last.
``--video_out`` writes the whole ride so, frame by frame (the real clip at its own pace, looped).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from src.common.errors import UserError
from src.common.video import read_video_frames, save_png, write_mp4


def _label(image: np.ndarray, text: str) -> np.ndarray:

    out = image.copy()
    cv2.rectangle(out, (0, 0), (8 + 9 * len(text), 20), (0, 0, 0), thickness=-1)
    cv2.putText(out, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _square(frame: np.ndarray, size: int) -> np.ndarray:

    height, width = frame.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return cv2.resize(frame[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)


def ride_rows(
    ride: np.ndarray, real: np.ndarray, *, fps: float, times: list[float], panels: list[str], order: list[str]
) -> np.ndarray:
    """One row per time: the chosen panels of the ride's frame, then the real frame, labelled."""
    count, height, width = ride.shape[:3]
    if width != height * len(panels):
        raise UserError(
            f"the ride is {width}x{height}, not {len(panels)} square panels ({', '.join(panels)})",
            "Give --panels the names of the recording's panels, left to right.",
        )
    missing = [name for name in order if name not in panels]
    if missing:
        raise UserError(f"--order names {missing}, which are not among --panels {panels}")
    rows = []
    for seconds in times:
        index = min(int(round(seconds * fps)), count - 1)
        frame = ride[index]
        cells = [
            _label(frame[:, panels.index(n) * height : (panels.index(n) + 1) * height], n) for n in order
        ]
        real_frame = real[min(int(len(real) * index / max(count - 1, 1)), len(real) - 1)]
        cells.append(_label(_square(real_frame, height), "real city (held out)"))
        rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(rows, axis=0)


def ride_video(
    ride: np.ndarray, real: np.ndarray, *, fps: float, real_fps: float, panels: list[str], order: list[str]
) -> np.ndarray:
    """Every frame of the ride as a row of ``ride_rows``, the real clip beside it at its own rate."""
    frames = []
    for index in range(len(ride)):
        real_index = int(index / fps * real_fps) % len(real)
        frames.append(
            ride_rows(
                ride[index : index + 1],
                real[real_index : real_index + 1],
                fps=fps,
                times=[0.0],
                panels=panels,
                order=order,
            )
        )
    return np.stack(frames)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ride", required=True, help="a side-by-side recording of play_game")
    parser.add_argument("--real", required=True, help="a real video to set beside it")
    parser.add_argument("--out", default="game/ride_city.png")
    parser.add_argument("--times", type=float, nargs="+", default=[3.0, 8.0], help="seconds into the ride")
    parser.add_argument(
        "--fps", type=float, default=30.0, help="the recording's frame rate (play_game's --fps)"
    )
    parser.add_argument("--panels", default="student,dit,raster,depth", help="the recording's panels")
    parser.add_argument("--order", default="raster,student,dit", help="the panels to draw, in order")
    parser.add_argument("--video_out", default=None, help="also write the whole ride so, as an mp4")
    parser.add_argument("--real_fps", type=float, default=10.0, help="the real clip's frame rate")
    args = parser.parse_args(argv)

    for path in (args.ride, args.real):
        if not Path(path).is_file():
            raise UserError(f"no video at {path}")
    ride, real = read_video_frames(args.ride), read_video_frames(args.real)
    panels, order = args.panels.split(","), args.order.split(",")
    out = save_png(
        args.out, ride_rows(ride, real, fps=args.fps, times=args.times, panels=panels, order=order)
    )
    print(f"wrote {out}")
    if args.video_out:
        video = ride_video(ride, real, fps=args.fps, real_fps=args.real_fps, panels=panels, order=order)
        print(f"wrote {write_mp4(args.video_out, video, fps=args.fps)}")
    return out


if __name__ == "__main__":
    main()
