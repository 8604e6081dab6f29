"""Fly-throughs: a photo zoomed about its focus point, frame by frame, written as real mp4s that
prepare_data reads like any clip."""

from __future__ import annotations

import numpy as np
import pytest

from src.common.errors import UserError
from src.data.config import FlythroughConfig
from src.data.flythrough import flythrough_frames, make_flythroughs


def _dot_photo(height: int, width: int, spots: list[tuple[float, float]]) -> np.ndarray:
    """A dark photo with a bright Gaussian spot (sigma 3 px) at each (x, y)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.zeros((height, width))
    for x, y in spots:
        image += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 3.0**2))
    grey = np.clip(20 + 230 * image, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _centroid(frame: np.ndarray, around: tuple[float, float], radius: float) -> np.ndarray:
    weight = frame[..., 0].astype(np.float64) - 20
    yy, xx = np.mgrid[0 : frame.shape[0], 0 : frame.shape[1]]
    weight[(xx - around[0]) ** 2 + (yy - around[1]) ** 2 > radius**2] = 0
    weight = np.clip(weight, 0, None)
    return np.array([(weight * xx).sum(), (weight * yy).sum()]) / weight.sum()


def test_points_move_away_from_the_focus_by_the_zoom_and_the_focus_stays():
    # a 300x200 photo seen through a 200x200 window centred on the focus (pixel 149.5, 99.5: the
    # photo's middle), output 100x100:
    # a photo pixel is half an output pixel; a spot 60 px right of the focus sits 30 px right of
    # the frame centre at first and 30 * zoom ** (k / (n - 1)) px right of it in frame k
    photo = _dot_photo(200, 300, [(149.5, 99.5), (209.5, 99.5)])
    frames = list(flythrough_frames(photo, frames=5, size=(100, 100), zoom=1.5))
    assert len(frames) == 5 and all(f.shape == (100, 100, 3) and f.dtype == np.uint8 for f in frames)
    centre = np.array([49.5, 49.5])  # pixel centres: the frame's middle
    for k, frame in enumerate(frames):
        scale = 1.5 ** (k / 4)
        focus = _centroid(frame, tuple(centre), 10)
        np.testing.assert_allclose(focus, centre, atol=0.15)
        moved = _centroid(frame, (centre[0] + 30 * scale, centre[1]), 10)
        np.testing.assert_allclose(moved, centre + [30 * scale, 0], atol=0.15)


def test_an_off_centre_focus_keeps_its_place_in_the_frame():
    # focus at (0.25, 0.5) of a 400x200 photo (pixel 99.5, 99.5): the first 200x200 window starts
    # at x = 0 (clamped), so the focus sits half-way across it, and stays there as it shrinks
    photo = _dot_photo(200, 400, [(99.5, 99.5), (139.5, 99.5)])
    frames = list(flythrough_frames(photo, frames=4, size=(80, 80), zoom=2.0, focus=(0.25, 0.5)))
    for k, frame in enumerate(frames):
        scale = 2.0 ** (k / 3)
        np.testing.assert_allclose(_centroid(frame, (39.5, 39.5), 6), [39.5, 39.5], atol=0.15)
        moved = 39.5 + 16 * scale  # 40 photo px at 0.4 output px each
        np.testing.assert_allclose(_centroid(frame, (moved, 39.5), 6), [moved, 39.5], atol=0.15)


def test_make_flythroughs_writes_one_decodable_video_per_photo_and_keeps_a_users_folder(tmp_path):
    import cv2

    from src.common.video import read_video_frames

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("street", "park"):
        cv2.imwrite(str(photos / f"{name}.png"), rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))
    config = FlythroughConfig(photos=str(photos), out=str(tmp_path / "clips"), frames=6, resolution="64x48")
    written = make_flythroughs(config)
    assert sorted(p.name for p in written) == ["park.mp4", "street.mp4"]
    for path in written:
        assert read_video_frames(path).shape == (6, 48, 64, 3)
    make_flythroughs(config)  # its own folder: written again

    users = tmp_path / "mine"
    users.mkdir()
    (users / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not written by this command"):
        make_flythroughs(FlythroughConfig(photos=str(photos), out=str(users), frames=6))
    assert (users / "notes.txt").read_text() == "keep me" and len(list(users.iterdir())) == 1


def test_a_folder_without_photos_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="no .png/.jpg photos"):
        make_flythroughs(FlythroughConfig(photos=str(tmp_path), out=str(tmp_path / "out")))
