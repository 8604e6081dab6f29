"""FrameSize: a frame's (width, height), parsed once from WIDTHxHEIGHT text."""

from __future__ import annotations

import pytest

from src.common.config import parse_resolution
from src.common.errors import UserError
from src.common.frame_size import FrameSize


def test_parse_gives_width_then_height_and_str_gives_the_text_back():
    size = FrameSize.parse("320x240")
    assert size == FrameSize(width=320, height=240) == (320, 240)
    assert (size.width, size.height) == (320, 240)
    assert str(size) == "320x240" and f"{size}" == "320x240"
    assert FrameSize.parse(" 64 X 48 ") == (64, 48) and FrameSize.parse("96×64") == (96, 64)
    assert FrameSize.parse(str(size)) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("320by240", "invalid resolution '320by240'"),
        ("-96x96", "invalid resolution '-96x96'"),
        ("0x0", "invalid resolution '0x0': each side must be between 8 and 8192 pixels"),
        ("8193x240", "invalid resolution '8193x240': each side must be between 8 and 8192 pixels"),
    ],
)
def test_bad_text_is_a_one_line_user_error(text, message):
    with pytest.raises(UserError) as error:
        FrameSize.parse(text)
    assert str(error.value.message) == message and "\n" not in str(error.value)
    with pytest.raises(UserError) as same:
        parse_resolution(text)
    assert same.value.message == error.value.message and same.value.hint == error.value.hint


def test_the_error_names_what_was_parsed():
    with pytest.raises(UserError, match="invalid play_resolution 'big'") as error:
        FrameSize.parse("big", what="play_resolution")
    assert error.value.hint == "Write it as WIDTHxHEIGHT, for example 320x240."


def test_parse_resolution_still_gives_a_plain_tuple():
    assert type(parse_resolution("320x240")) is tuple and parse_resolution("320x240") == (320, 240)
