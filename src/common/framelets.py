"""The one check that a number of frames is a whole number of framelets (or of a renderer's
steps): every clip, batch and rollout is cut into them."""

from __future__ import annotations


def framelet_count(
    num_frames: int,
    frames_per_framelet: int,
    *,
    what: str = "frames",
    whose: str = "",
    error: type[Exception] = ValueError,
) -> int:
    """``num_frames // frames_per_framelet``; where that is not whole, raise ``error`` with one line
    naming ``what`` was counted and ``whose`` framelets they are (a model, a renderer, a teacher).
    Library code raises ``ValueError``; a check of a user's setting passes ``UserError``."""
    if num_frames % frames_per_framelet:
        owner = f" ({whose})" if whose else ""
        raise error(
            f"{what} ({num_frames}) is not a multiple of {frames_per_framelet} frames per framelet{owner}"
        )
    return num_frames // frames_per_framelet
