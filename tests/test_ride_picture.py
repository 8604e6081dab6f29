"""The ride picture: panels picked and ordered from a side-by-side recording, a real frame beside."""

from __future__ import annotations

import numpy as np
import pytest

from src.bench.ride_picture import main, ride_rows
from src.common.errors import UserError
from src.common.video import write_mp4


def _ride(frames: int = 10, size: int = 32) -> np.ndarray:
    """Panels of constant grey levels 10, 20, 30, 40 (student, dit, raster, depth) that grow by frame."""
    ride = np.zeros((frames, size, 4 * size, 3), np.uint8)
    for panel in range(4):
        ride[:, :, panel * size : (panel + 1) * size] = 10 * (panel + 1)
    return ride + np.arange(frames, dtype=np.uint8)[:, None, None, None]


def test_rows_hold_the_chosen_panels_in_order_then_the_real_frame():
    real = np.full((5, 48, 64, 3), 200, np.uint8)
    picture = ride_rows(
        _ride(), real, fps=2.0, times=[1.0, 4.0], panels=["student", "dit", "raster", "depth"],
        order=["raster", "student", "dit"],
    )  # fmt: skip
    assert picture.shape == (64, 4 * 32, 3)
    # bottom-right of each cell (away from the label): raster 30, student 10, dit 20, real 200, + frame
    for row, frame in ((0, 2), (1, 8)):
        corners = [int(picture[row * 32 + 31, cell * 32 + 31, 0]) for cell in range(4)]
        assert corners == [30 + frame, 10 + frame, 20 + frame, 200]


def test_a_recording_of_other_panels_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="not 3 square panels"):
        ride_rows(_ride(), _ride(), fps=2.0, times=[0.0], panels=["a", "b", "c"], order=["a"])
    with pytest.raises(UserError, match="not among --panels"):
        ride_rows(_ride(), _ride(), fps=2.0, times=[0.0], panels=list("abcd"), order=["e"])


def test_the_script_reads_real_videos_and_writes_a_png(tmp_path):
    write_mp4(tmp_path / "ride.mp4", _ride(size=32), fps=2.0)
    write_mp4(tmp_path / "real.mp4", np.full((4, 48, 64, 3), 120, np.uint8), fps=2.0)
    out = main(
        ["--ride", str(tmp_path / "ride.mp4"), "--real", str(tmp_path / "real.mp4"), "--fps", "2",
         "--times", "1", "--out", str(tmp_path / "p.png"), "--video_out", str(tmp_path / "v.mp4")]
    )  # fmt: skip
    assert out.is_file() and out.stat().st_size > 0
    from src.common.video import read_video_frames

    video = read_video_frames(tmp_path / "v.mp4")
    assert video.shape == (10, 32, 4 * 32, 3)  # every ride frame: raster | student | dit | real
