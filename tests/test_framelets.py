"""The one framelet-multiple check counts whole framelets and refuses the rest in one line."""

from __future__ import annotations

import pytest

from src.common.errors import UserError
from src.common.framelets import framelet_count


def test_whole_framelets_are_counted():
    assert framelet_count(8, 2) == 4
    assert framelet_count(5, 1) == 5


def test_a_partial_framelet_names_what_and_whose():
    with pytest.raises(ValueError, match=r"^frames \(3\) is not a multiple of 2 frames per framelet$"):
        framelet_count(3, 2)
    with pytest.raises(UserError) as error:
        framelet_count(7, 2, what="data.clip_frames", whose="the teacher's", error=UserError)
    assert (
        error.value.one_line()
        == "data.clip_frames (7) is not a multiple of 2 frames per framelet (the teacher's)"
    )
