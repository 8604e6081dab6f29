"""Progress bars print plain lines, with no escape codes, when the output is not a terminal."""

from __future__ import annotations

import io

from tqdm import tqdm as real_tqdm

from src.common.progress import PlainLines, tqdm


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nested_bars_written_to_a_file_are_plain_lines():
    out = io.StringIO()
    for index in tqdm(range(3), desc="videos", file=out, position=0, disable=False):
        bar = tqdm(
            total=4,
            desc=f"video{index}",
            unit="frame",
            position=1,
            leave=False,
            dynamic_ncols=True,
            file=out,
            disable=False,
        )
        for _ in range(4):
            bar.update(1)
        bar.close()
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text, repr(text)
    lines = text.splitlines()
    assert text.endswith("\n") and all(line.strip() for line in lines)
    assert lines[-1].startswith("videos: 3/3") and any(line.startswith("video2: 4/4 frame") for line in lines)
    assert len(lines) <= 2 + 3 * 2  # the first and last state of each bar, not every update


def test_a_terminal_gets_tqdms_own_bar():
    terminal = Terminal()
    bar = tqdm(total=2, file=terminal, disable=False)  # conftest's TQDM_DISABLE is only a default
    bar.update(2)
    bar.close()
    assert type(bar) is real_tqdm and not isinstance(bar, PlainLines)
    assert "\r" in terminal.getvalue()
