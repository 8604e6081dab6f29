"""Real still photos as short forward-moving videos ("fly-throughs"), so that scenes no training
video shows (an open sky over a country road, facades, a park) can be prepared like any video.

Each photo becomes one clip: a window of the output's aspect, centred on a focus point, shrinks
geometrically by ``zoom`` over the clip, so the picture expands about that point the way a scene
expands about the focus of expansion when the camera moves straight at it. Frame ``k`` of ``n`` is
the photo zoomed by ``zoom ** (k / (n - 1))`` about the focus, which stays fixed in the frame; a
point at offset ``d`` from it moves to ``d * zoom ** (k / (n - 1))``. A zoom has no parallax (near
and far move alike), so this is forward motion over a distant scene, not a drive along a road.

``prepare_data`` then treats the clips as real videos: every condition comes from the same
real-video extractors (flow estimated, not the exact zoom), so a fly-through pairs frames and
conditions exactly as a recorded clip does.

    uv run python -m src.scripts.make_flythroughs --photos mvtb --out data/flythroughs
    uv run python -m src.scripts.prepare_data --videos data/flythroughs --out data/prepared/photos
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from src.common.config import parse_resolution
from src.common.errors import UserError
from src.common.outputs import claim_output_folder, write_output_marker
from src.common.progress import tqdm
from src.common.video import write_mp4
from src.data.config import FlythroughConfig
from src.data.photos import photo_files, read_photo

OUTPUT_KIND = "fly-through videos"


def start_window(photo_hw: tuple[int, int], aspect: float, focus: tuple[float, float]) -> np.ndarray:
    """The first frame's window ``(left, top, width, height)`` in photo pixels: the largest of the
    output's ``aspect`` (width / height) that fits the photo, centred on the focus as far as the
    photo allows."""
    h, w = photo_hw
    width, height = (w, w / aspect) if w / aspect <= h else (h * aspect, h)
    left = float(np.clip(focus[0] * w - width / 2, 0.0, w - width))
    top = float(np.clip(focus[1] * h - height / 2, 0.0, h - height))
    return np.array([left, top, width, height])


def zoom_window(window: np.ndarray, focus_xy: np.ndarray, scale: float) -> np.ndarray:
    """``window`` magnified by ``scale`` about the photo point ``focus_xy``: the point keeps its
    place in the frame and every other point moves away from it by ``scale``."""
    left, top, width, height = window
    return np.array(
        [
            focus_xy[0] - (focus_xy[0] - left) / scale,
            focus_xy[1] - (focus_xy[1] - top) / scale,
            width / scale,
            height / scale,
        ]
    )


def render_window(photo: np.ndarray, window: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The photo region ``window`` (sub-pixel) resampled to ``size`` = (width, height): sampled
    bilinearly at twice the size, then area-averaged down, so a shrinking window does not alias."""
    out_w, out_h = size
    left, top, width, height = window
    sx, sy = width / (2 * out_w), height / (2 * out_h)
    # the centre of supersampled pixel (u, v) is photo point (left + (u + 0.5) sx, top + (v + 0.5) sy)
    matrix = np.array([[sx, 0.0, left + 0.5 * sx - 0.5], [0.0, sy, top + 0.5 * sy - 0.5]])
    fine = cv2.warpAffine(
        photo,
        matrix,
        (2 * out_w, 2 * out_h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    return cv2.resize(fine, (out_w, out_h), interpolation=cv2.INTER_AREA)


def flythrough_frames(
    photo: np.ndarray,
    *,
    frames: int,
    size: tuple[int, int],
    zoom: float,
    focus: tuple[float, float] = (0.5, 0.5),
) -> Iterator[np.ndarray]:
    """The clip of one RGB uint8 photo ``h w 3``: ``frames`` frames of ``size`` (width, height),
    frame ``k`` magnified by ``zoom ** (k / (frames - 1))`` about the focus point."""
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 photo h w 3, got {photo.dtype} {photo.shape}")
    h, w = photo.shape[:2]
    window = start_window((h, w), size[0] / size[1], focus)
    # the focus point in photo coordinates (pixel edges at integers): inside the first window,
    # which is centred on it as far as the photo allows, so every later window stays inside too
    focus_xy = np.array([focus[0] * w, focus[1] * h])
    for k in range(frames):
        scale = zoom ** (k / (frames - 1))
        yield render_window(photo, zoom_window(window, focus_xy, scale), size)


def make_flythroughs(config: FlythroughConfig) -> list[Path]:
    """Write one fly-through mp4 per photo of ``config.photos`` into ``config.out``; the paths.

    The folder is claimed first (a new or empty folder, or one this command wrote: nothing
    else in it is replaced), each video is written under a temporary name and renamed when done."""
    size = parse_resolution(config.resolution)
    files = photo_files(config.photos)
    out = claim_output_folder(config.out, kind=OUTPUT_KIND, inputs=files)
    names = [f"{path.stem}.mp4" for path in files]
    if len(set(names)) != len(names):
        raise UserError(
            f"{config.photos} holds photos that share a name apart from the suffix",
            "Rename them so each fly-through gets its own file.",
        )
    out.mkdir(parents=True, exist_ok=True)
    focus = (config.focus_x, config.focus_y)
    written = [
        write_mp4(
            out / name,
            flythrough_frames(
                read_photo(path), frames=config.frames, size=size, zoom=config.zoom, focus=focus
            ),
            fps=config.fps,
        )
        for path, name in zip(tqdm(files, desc="fly-throughs", unit="photo"), names, strict=True)
    ]
    write_output_marker(out, kind=OUTPUT_KIND)
    return written
