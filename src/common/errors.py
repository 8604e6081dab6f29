"""The user-facing error type and the wrapper every script's ``main`` runs under.

A :class:`UserError` means the input was wrong (a missing file, a bad flag, a
corrupt download): the script prints one line that says what was wrong and what
to do, and exits with status 2, without a traceback. So does an OSError about a
path the person chose (read-only, not a folder, a full disk). Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import errno
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


# errors that say a path given to the command cannot be used (not writable, not a folder, a read-only
# disk, a full disk): the person can fix them, so they are one line, like a UserError
PLACE_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENAMETOOLONG,
}


def place_error_line(error: OSError) -> str:
    """One line for an OSError about a path: which path, what is wrong, what to do."""
    where = error.filename if error.filename is not None else "a file the command writes"
    also = f" (and {error.filename2})" if error.filename2 is not None else ""
    what = error.strerror or str(error)
    if error.errno == errno.EEXIST:  # mkdir of a folder on the way, where a file is
        what = "a file is where a folder is needed"
    return (
        f"cannot use {where}{also}: {what}. Check that the folder exists, is a folder and is writable "
        "(and that the disk has space), or choose another path"
    )


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
        except OSError as error:
            if error.errno not in PLACE_ERRNOS:
                raise
            print(f"error: {place_error_line(error)}", file=sys.stderr, flush=True)
            sys.exit(USER_ERROR_EXIT_CODE)

    return wrapper  # type: ignore[return-value]
