"""The user-facing error type and the wrapper every script's ``main`` runs under.

A :class:`UserError` means the input was wrong (a missing file, a bad flag, a
corrupt download): the script prints one line that says what was wrong and what
to do, and exits with status 2, without a traceback. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])

USER_ERROR_EXIT_CODE = 2


class UserError(Exception):
    """Bad input from the person running a command.

    ``message`` says what was wrong; ``hint`` says what to do about it.
    """

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        if self.hint:
            return f"{self.message.rstrip('. ')}. {self.hint}"
        return self.message


def script_main(fn: F) -> F:
    """Run ``fn`` so that a UserError becomes one line on stderr and exit code 2.

    Ctrl-C exits with status 130 and a short message instead of a traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as error:
            print(f"error: {error.one_line()}", file=sys.stderr, flush=True)
            sys.exit(USER_ERROR_EXIT_CODE)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr, flush=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
