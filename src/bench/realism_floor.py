"""How real does a game ride have to look? KID and SWD of real footage of *other* places against
the reference clip a game ride is scored on.

``evaluate`` scores a game ride by ``game_kid_to_real`` and ``game_swd_to_real``: the distance of
its frames to the real frames of ``--data`` (a highway ride, say). Those distances mix two things:
how photographic the frames are, and how much the place looks like the reference's place. This
bench measures the second on its own: real videos and photo fly-throughs of other places, scored
against the same reference frames in the same way (KID on the standard Inception, SWD), and the
reference's first half against its second half (the same place: the floor). A renderer of a
city boulevard cannot be expected to score below real footage of a city street.

Each ``--others`` entry is one set (a prepared dataset, a video file or a folder of videos; its
videos that are also in the reference are left out), or one set per video with ``--per_video``.
Each set is ``frames_per_set`` frames spread evenly over it: the game ride's length in evaluate.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from src.bench.config import BenchRealismFloorConfig
from src.common.config import parse_resolution
from src.common.errors import UserError
from src.common.io import report_table_and_json
from src.common.ranges import check_ranges
from src.conditions.spec import ConditionSpec
from src.eval.metrics import sliced_wasserstein_distance
from src.eval.prepared_input import prepared_data
from src.eval.scoring import FeatureScorer, load_real_clips, to_unit
from src.runtime.package import default_cache_dir

__all__ = ["BenchRealismFloorConfig", "realism_floor", "run_bench_realism_floor_and_report", "spread"]


def _frames_by_video(data: Path, *, split: str, clip_frames: int) -> dict[str, torch.Tensor]:
    """``{video id: n 3 h w in [0, 1]}``: the split's frames of each video of a prepared dataset,
    read in whole clips as evaluate reads them."""

    clips = load_real_clips(
        data, split=split, clip_frames=clip_frames, num_clips=None, spec=ConditionSpec(),
        stats=None, with_forward_flow=False,
    )  # fmt: skip
    frames: dict[str, list[torch.Tensor]] = {}
    for clip in clips:
        frames.setdefault(clip["video"], []).append(to_unit(clip["frames"]))
    return {video: torch.cat(parts) for video, parts in frames.items()}


def spread(frames: torch.Tensor, count: int) -> torch.Tensor:
    """At most ``count`` frames spread evenly over ``frames`` (first and last included)."""
    if len(frames) <= count:
        return frames
    return frames[torch.linspace(0, len(frames) - 1, count).round().long()]


def realism_floor(
    reference: torch.Tensor, sets: dict[str, torch.Tensor], *, scorer=None
) -> dict[str, dict[str, float | int | None]]:
    """``{name: {frames, kid, kid_std, swd}}`` of each set of ``n 3 h w`` frames in [0, 1]
    against ``reference``, and ``reference (first half)`` against its second half."""

    scorer = scorer or FeatureScorer()
    half = len(reference) // 2
    rows = {"reference (first half)": (reference[:half], reference[half:])}
    rows.update({name: (frames, reference) for name, frames in sets.items()})
    result = {}
    for name, (frames, against) in rows.items():
        kid = scorer.kid_fid("kid", frames, against)
        result[name] = {
            "frames": len(frames),
            "against_frames": len(against),
            "kid": kid["kid"],
            "kid_std": kid["kid_std"],
            "swd": sliced_wasserstein_distance(frames, against, seed=0)["mean"],
        }
    return result


def format_table(result: dict) -> str:
    lines = [
        f"real footage against {result['reference']} ({result['reference_frames']} frames)",
        "",
        f"{'set':<40} {'frames':>6} {'KID':>8} {'SWD (x1e3)':>11}",
    ]
    for name, row in result["sets"].items():
        kid = "-" if row["kid"] is None else f"{row['kid']:.3f}"
        lines.append(f"{name:<40} {row['frames']:>6} {kid:>8} {row['swd']:>11.1f}")
    return "\n".join(lines)


def run_bench_realism_floor_and_report(config: BenchRealismFloorConfig) -> dict:

    check_ranges(config)  # as when parsed: a config built in code is checked too
    config.check()
    width, height = parse_resolution(config.resolution)
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()

    def frames_of(data: str) -> dict[str, torch.Tensor]:
        path = prepared_data(
            data, width=width, height=height, fps=config.fps, split=config.split, cache_dir=cache_dir
        )
        return _frames_by_video(path, split=config.split, clip_frames=config.clip_frames)

    reference_videos = frames_of(config.reference)
    reference = torch.cat(list(reference_videos.values()))
    sets: dict[str, torch.Tensor] = {}
    for data in config.others:
        videos = {k: v for k, v in frames_of(data).items() if k not in reference_videos}
        if not videos:
            raise UserError(
                f"--others {data} has no video apart from the reference's",
                "Give footage of other places than the reference clip.",
            )
        if config.per_video:
            sets.update({video: spread(frames, config.frames_per_set) for video, frames in videos.items()})
        else:
            pooled = torch.cat([spread(f, config.frames_per_set) for f in videos.values()])
            sets[f"{Path(data).name} ({len(videos)} videos)"] = spread(pooled, config.frames_per_set)
    sizes = {tuple(f.shape[-2:]) for f in [reference, *sets.values()]}
    if len(sizes) > 1:
        raise UserError(
            f"the sets have different frame sizes {sorted(sizes)}",
            "Give prepared datasets of one resolution, or videos (prepared at --resolution).",
        )
    result = {
        "reference": config.reference,
        "reference_frames": len(reference),
        "resolution": f"{reference.shape[-1]}x{reference.shape[-2]}",
        "sets": realism_floor(reference, sets),
        "config": dataclasses.asdict(config),
    }
    return report_table_and_json(format_table(result), result, config.json_out)
