"""A game ride judged against held-out real footage of the place it shows (``evaluate --reference``).

``evaluate`` scores a ride's realism against the frames of ``--data`` (``game_kid_to_real``);
those are the clips its fidelity is measured on, often another place (a highway). ``--reference``
names real footage of the game's own kind of place that no model trained on, and adds
``REFERENCE_KEYS``: KID (standard Inception) and SWD of the ride's rendered and raster frames to
every frame of it.

The city reference: ``city_street_pandaset002_back_reversed.mp4`` of
``../shared/data/city_videos/``, held out whole (never prepared for training). Why that clip and
not the last 25 % of each city clip: a tail sits seconds from frames the model trained on, so it
would reward memorising the street, and its floor would be the clip's own earlier half; a whole
held-out clip is the same street from another camera, the floor the realism target is set from
(0.23-0.26). Why the rear camera and not the front: played backwards, its cars drive in reverse,
which would teach wrong motion in training but is invisible to per-frame features; and the
front clip's LiDAR is twice as dense, worth more in training. ``bench_realism_floor --reference``
with the same clip gives the floor beside it: KID of other real footage against it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from src.common.errors import UserError
from src.conditions.spec import ConditionSpec
from src.eval.config import REFERENCE_HINT
from src.eval.metrics import sliced_wasserstein_distance
from src.eval.scoring import load_real_clips, to_unit

CITY_REFERENCE_VIDEO = "city_street_pandaset002_back_reversed.mp4"
REFERENCE_KEYS = (
    "game_kid_to_reference",
    "game_kid_to_reference_std",
    "game_raster_kid_to_reference",
    "game_raster_kid_to_reference_std",
    "game_swd_to_reference",
    "game_raster_swd_to_reference",
    "num_reference_frames",
)


def reference_frames(
    reference: str, *, width: int, height: int, fps: float, clip_frames: int, cache_dir: Path, prepare
) -> torch.Tensor:
    """Every frame (``n 3 h w`` in [0, 1]) of ``reference``: a prepared dataset (its ``all`` split)
    or videos, prepared at ``width`` x ``height`` and ``fps`` (cached) by ``prepare`` (evaluate's
    ``prepared_data``, passed in: this module sits beside evaluate, not above it), in whole clips."""

    if not Path(reference).exists():
        raise UserError(f"--reference {reference} does not exist", REFERENCE_HINT)
    dataset = prepare(reference, width=width, height=height, fps=fps, split="all", cache_dir=cache_dir)
    clips = load_real_clips(
        dataset, split="all", clip_frames=clip_frames, num_clips=None, spec=ConditionSpec(),
        stats=None, with_forward_flow=False,
    )  # fmt: skip
    return torch.cat([to_unit(clip["frames"]) for clip in clips])


def ride_columns(game_video: np.ndarray, *, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rendered and the raster frames of ``evaluate``'s game video (``grid_video`` of flat |
    rendered | raster side by side; a drift ride's early window first), ``t 3 h w`` in [0, 1]."""
    video = torch.from_numpy(np.ascontiguousarray(game_video[:frames])).permute(0, 3, 1, 2).float() / 255
    width = video.shape[-1] // 3
    return video[..., width : 2 * width], video[..., 2 * width :]


def reference_metrics(
    game_video: np.ndarray | None, reference: torch.Tensor, *, frames: int | None, features=None
) -> dict[str, float | int | None]:
    """``REFERENCE_KEYS`` of a ride's game video against ``reference`` frames (None where there is
    no ride, or no ``features`` for KID)."""

    metrics: dict[str, float | int | None] = dict.fromkeys(REFERENCE_KEYS)
    metrics["num_reference_frames"] = len(reference)
    if game_video is None or not frames:
        return metrics
    rendered, raster = ride_columns(game_video, frames=frames)
    if rendered.shape[-2:] != reference.shape[-2:]:
        raise ValueError(
            f"ride frames {tuple(rendered.shape[-2:])} and reference {tuple(reference.shape[-2:])}"
        )
    for name, ride in (("game", rendered), ("game_raster", raster)):
        metrics[f"{name}_swd_to_reference"] = sliced_wasserstein_distance(ride, reference, seed=0)["mean"]
        if features is not None:
            kid = features.kid_fid(f"{name}_kid_to_reference", ride, reference)
            metrics |= {k: v for k, v in kid.items() if "fid" not in k}
    return metrics


def judge_ride(config, game_video, metrics: dict, *, size, cache_dir: Path, features, prepare) -> dict:
    """``evaluate``'s ``--reference`` keys: its ride (``game_video``, ``metrics``' frame count)
    against every frame of ``config.reference``; ``size`` is the data's (width, height, fps)."""
    width, height, fps = size
    reference = reference_frames(
        config.reference,
        width=width,
        height=height,
        fps=fps,
        clip_frames=config.clip_frames,
        cache_dir=cache_dir,
        prepare=prepare,
    )
    return reference_metrics(game_video, reference, frames=metrics.get("num_game_frames"), features=features)
