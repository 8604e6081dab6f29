"""How often training clips come from each video: per-source sampling weights.

Without weights a training clip's video is drawn in proportion to its frames, so one long clip
(vtest's 676 mall frames) is most of what a model sees. ``data.source_weights`` maps patterns to
weights instead: each video takes the weight of the first pattern (in the order written) that
matches its file name, its file stem, its prepared id or its URL (shell-style, ``fnmatch``), and
is drawn with probability proportional to that weight, whatever its length::

    data:
      source_weights: {"city_street_*": 2, "sidewalk_*": 2, "highway_*": 2, "*": 1}

A weight of 0 leaves a video out of training. A video that no pattern matches, a pattern that
matches no video (a typo), a negative weight or all-zero weights is a one-line error.
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import PurePath

import numpy as np

from src.common.errors import UserError


def video_names(record: dict) -> list[str]:
    """The names a pattern is matched against: file name, stem, prepared id, URL."""
    source = PurePath(str(record.get("source", "")))
    return [n for n in (source.name, source.stem, record.get("id", ""), record.get("url", "")) if n]


def video_weights(videos: list[dict], source_weights: dict[str, float]) -> dict[str, float]:
    """``{video id: weight}`` for the manifest's video records (see the module docstring)."""
    for pattern, weight in source_weights.items():
        if not weight >= 0:
            raise UserError(
                f"data.source_weights[{pattern!r}] is {weight}: weights must be 0 or more",
                "Use 0 to leave a video out.",
            )
    used: set[str] = set()
    weights = {}
    for record in videos:
        names = video_names(record)
        pattern = next((p for p in source_weights if any(fnmatch(n, p) for n in names)), None)
        if pattern is None:
            raise UserError(
                f"video {names[0]} matches none of data.source_weights' patterns {list(source_weights)}",
                'Add a pattern for it, or "*" last for every other video.',
            )
        used.add(pattern)
        weights[record["id"]] = float(source_weights[pattern])
    unused = [p for p in source_weights if p not in used]
    if unused:
        raise UserError(
            f"data.source_weights pattern(s) {unused} match no video of the dataset (or only videos an "
            "earlier pattern took)",
            "Check the names against the manifest's videos, or remove them.",
        )
    if not any(weights.values()):
        raise UserError("every data.source_weights weight is 0: no video left to train on")
    return weights


def segment_probabilities(
    segments: list[dict], videos: list[dict], source_weights: dict[str, float] | None
) -> np.ndarray:
    """The probability of drawing each segment (one per video and split): proportional to its
    frames without ``source_weights``, else to its video's weight."""
    if not source_weights:
        weights = np.array([s["num_frames"] for s in segments], np.float64)
    else:
        by_video = video_weights(videos, dict(source_weights))
        weights = np.array([by_video[s["video"]] for s in segments], np.float64)
        if not weights.sum() > 0:
            raise UserError(
                "every video with a non-zero data.source_weights weight is too short for one clip",
                "Give a longer video some weight, or use shorter clips.",
            )
    return weights / weights.sum()
