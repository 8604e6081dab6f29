"""Progress bars that suit where the output goes.

On a terminal, ``tqdm`` draws its usual bar in place. Written to a file or a pipe (a log, CI),
a redrawn bar leaves carriage returns, cursor moves (nested bars) and hundreds of partial
states; there the same call prints one plain line now and then (at most every
``PLAIN_INTERVAL_S`` seconds, and once at the end). Import ``tqdm`` from here instead of from
the tqdm package; it takes tqdm's arguments.
"""

from __future__ import annotations

import sys

from tqdm import tqdm as _tqdm

PLAIN_INTERVAL_S = 30.0


class PlainLines(_tqdm):
    """A tqdm that writes each update as its own line, with no bar, escape codes or positions."""

    def __init__(self, *args, **kwargs):
        kwargs.pop("position", None)  # nested bars move the cursor: plain lines need no place
        kwargs.pop("dynamic_ncols", None)
        kwargs["mininterval"] = max(kwargs.get("mininterval", 0.1), PLAIN_INTERVAL_S)
        kwargs.setdefault(
            "bar_format", "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}]{postfix}"
        )
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        text = (self.__str__() if msg is None else msg).strip()
        if text:
            self.fp.write(text + "\n")
            self.fp.flush()
        return bool(text)  # tqdm writes a carriage return after a cleared (empty) display

    def close(self):
        if not self.disable and not getattr(self, "_plain_closed", False):
            self._plain_closed = True
            self.leave = False  # tqdm's close would clear or redraw the line: write the last state once
            self.display()
        super().close()


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def tqdm(*args, **kwargs) -> _tqdm:
    """``tqdm.tqdm`` on a terminal, ``PlainLines`` anywhere else (see the module docstring)."""
    stream = kwargs.get("file") or sys.stderr
    return (_tqdm if _is_terminal(stream) else PlainLines)(*args, **kwargs)
