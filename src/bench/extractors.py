"""Accuracy of the real-video extractors against ground truth.

- Game rollouts: the game renders exact flow and metric depth with its lit colour view; the
  extractors run on the colour view and are compared with them (flow end-point error in pixels;
  depth Spearman rank correlation of extracted inverse depth with the game's inverse depth).
- ``aloeL.jpg`` with ``aloeGT.png`` (opencv-doc): a real image with ground-truth disparity
  (proportional to inverse depth); Spearman rank correlation on pixels with known disparity.

Baselines put the numbers in context: zero flow, and for depth the ground-plane row prior alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from src.bench.config import EvalExtractorsConfig  # its settings live apart, free of cv2
from src.common.config import parse_resolution
from src.common.errors import UserError
from src.common.gbuffer_io import load_gbuffer_clip
from src.conditions.depth import GeometricDepth
from src.conditions.extract import ExtractConfig, Extractor
from src.conditions.flow import DISFlow, end_point_error
from src.data.config import DecodeConfig
from src.data.sidecar import decode_with_sidecar, sidecar_path
from src.data.sources import find_embedded_file
from src.game.recording import record_autopilot_clip


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two equally long 1-D arrays (ties broken by order)."""
    ra = np.empty(len(a))
    rb = np.empty(len(b))
    ra[np.argsort(a, kind="stable")] = np.arange(len(a))
    rb[np.argsort(b, kind="stable")] = np.arange(len(b))
    ra -= ra.mean()
    rb -= rb.mean()
    return float((ra * rb).sum() / np.sqrt((ra * ra).sum() * (rb * rb).sum() + 1e-12))


# ------------------------------------------------------------------ game rollouts


def _row_prior(extract: ExtractConfig) -> GeometricDepth:
    """The baseline: the ground-plane row prior alone, no image cues, no edge-aware filter."""
    return GeometricDepth(
        horizon_fraction=extract.horizon_fraction,
        parallax_weight=0.0,
        texture_weight=0.0,
        guided_radius_fraction=0.0,
    )


def evaluate_game_clip(directory: str | Path, extract: ExtractConfig) -> dict:
    """Flow EPE and depth rank correlation of the extractors on one recorded game clip."""
    arrays, meta = load_gbuffer_clip(directory)
    color, flow_true, depth_m = arrays["color"], arrays["flow"], arrays["depth"]
    new_run = arrays.get("new_run", np.zeros(len(color), np.uint8))
    dis = DISFlow(extract.dis_preset)
    extractor = Extractor(extract)
    prior_only = _row_prior(extract)
    epe, epe_zero, epe_moving, epe_textured, rho, rho_prior, rho_no_flow = [], [], [], [], [], [], []
    for t in range(1, len(color)):
        if new_run[t]:
            continue
        flow = dis(color[t - 1], color[t])
        epe.append(end_point_error(flow, flow_true[t]))
        epe_zero.append(end_point_error(np.zeros_like(flow), flow_true[t]))
        moving = np.linalg.norm(flow_true[t], axis=-1) > 0.5
        if moving.any():
            epe_moving.append(end_point_error(flow, flow_true[t], moving))
        # where the frame has texture (flow is observable there; flat road and sky are not)
        grey = cv2.cvtColor(color[t], cv2.COLOR_RGB2GRAY).astype(np.float32)
        textured = (
            cv2.GaussianBlur(
                np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)), (5, 5), 0
            )
            > 40
        )
        if textured.any():
            epe_textured.append(end_point_error(flow, flow_true[t], textured))
        truth = 1.0 / np.maximum(depth_m[t], 1e-3)  # inverse depth; sky is the farthest
        inverse = (
            extractor.depth.frame(color[t], flow)
            if hasattr(extractor.depth, "frame")
            else extractor.depth(color[t : t + 1], flow[None])[0]
        )
        rho.append(rank_correlation(inverse.ravel(), truth.ravel()))
        rho_prior.append(rank_correlation(prior_only.frame(color[t]).ravel(), truth.ravel()))
        if hasattr(extractor.depth, "frame"):
            rho_no_flow.append(rank_correlation(extractor.depth.frame(color[t]).ravel(), truth.ravel()))
    result = {
        "clip": str(directory),
        "frames": len(color),
        "resolution": meta["resolution"],
        "fps": meta["fps"],
        "flow_epe_px": float(np.mean(epe)),
        "flow_epe_moving_px": float(np.mean(epe_moving)) if epe_moving else None,
        "flow_epe_textured_px": float(np.mean(epe_textured)) if epe_textured else None,
        "flow_epe_zero_baseline_px": float(np.mean(epe_zero)),
        "mean_true_flow_px": float(np.mean(np.linalg.norm(flow_true[1:], axis=-1))),
        "depth_spearman": float(np.mean(rho)),
        "depth_spearman_row_prior_only": float(np.mean(rho_prior)),
    }
    if rho_no_flow:
        result["depth_spearman_without_flow"] = float(np.mean(rho_no_flow))
    return result


# ------------------------------------------------------------------ aloe (real image, true disparity)


def evaluate_aloe(extract: ExtractConfig, *, width: int = 320) -> dict:
    image = cv2.cvtColor(cv2.imread(str(find_embedded_file("aloeL.jpg"))), cv2.COLOR_BGR2RGB)
    disparity = cv2.imread(str(find_embedded_file("aloeGT.png")), cv2.IMREAD_UNCHANGED)
    if disparity.ndim == 3:
        disparity = disparity[..., 0]
    height = round(image.shape[0] * width / image.shape[1])
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    disparity = cv2.resize(disparity, (width, height), interpolation=cv2.INTER_NEAREST).astype(np.float32)
    valid = disparity > 0  # 0 = unknown
    extractor = Extractor(extract)
    prior_only = _row_prior(extract)
    inverse = extractor.depth(image[None])[0]
    return {
        "image": "aloeL.jpg",
        "resolution": [width, height],
        "valid_fraction": float(valid.mean()),
        "depth_spearman": rank_correlation(inverse[valid], disparity[valid]),
        "depth_spearman_row_prior_only": rank_correlation(prior_only.frame(image)[valid], disparity[valid]),
    }


def evaluate_lidar_video(
    video: str | Path, extract: ExtractConfig, *, resolution: str, frames: int, fps: float
) -> dict:
    """Depth rank correlation of the extractors against a video's depth sidecar (densified as
    ``prepare_data`` takes it), averaged over the frames from the second on (the first has no flow), at the
    sidecar camera's own field of view where it gives one."""
    video = Path(video)
    decode = DecodeConfig(fps=fps, resolution=resolution, max_frames=frames)
    rgb, sidecar = decode_with_sidecar(video, decode)
    if sidecar is None:
        raise UserError(f"{video} has no depth sidecar beside it", f"Expected {sidecar_path(video)}.")
    fov = sidecar.fov_y_deg()
    extract = dataclasses.replace(extract, assumed_fov_y_deg=fov) if fov is not None else extract
    extractor = Extractor(extract)  # its flow and depth only: the flat colour is not scored here
    flow = extractor.flow.clip(rgb)
    depth = extractor.depth(rgb, flow)
    truth = sidecar.inverse_depth(0, len(rgb))
    prior_only = _row_prior(extract)
    rho = [rank_correlation(depth[t].ravel(), truth[t].ravel()) for t in range(1, len(rgb))]
    rho_prior = [
        rank_correlation(prior_only.frame(rgb[t]).ravel(), truth[t].ravel()) for t in range(1, len(rgb))
    ]
    return {
        "video": str(video),
        "frames": len(rgb),
        "median_flow_px": float(np.median(np.linalg.norm(flow[1:], axis=-1))),
        "depth_spearman": float(np.mean(rho)),
        "depth_spearman_row_prior_only": float(np.mean(rho_prior)),
    }


def evaluate_extractors(config: EvalExtractorsConfig, *, work_dir: str | Path) -> dict:
    """Every measurement, as one JSON-ready dict."""
    extractor = Extractor(config.extract)
    results: dict = {
        "extractors": extractor.settings(),
        "game": [],
        "aloe": evaluate_aloe(config.extract, width=config.aloe_width),
        "lidar": [
            evaluate_lidar_video(
                video,
                config.extract,
                resolution=config.lidar_resolution,
                frames=config.lidar_frames,
                fps=config.game_fps,
            )
            for video in config.lidar_videos
        ],
    }
    if not config.skip_game:
        width, height = parse_resolution(config.game_resolution)
        clips = [Path(config.game_clip)] if config.game_clip else [
            record_autopilot_clip(Path(work_dir) / f"game-seed{seed}", width=width, height=height,
                                  frames=config.game_frames, seed=seed, fps=config.game_fps)
            for seed in config.game_seeds
        ]  # fmt: skip
        for clip in clips:
            if not (clip / "meta.json").is_file():
                raise UserError(
                    f"not a G-buffer clip: {clip}", "Record one with play_game --record_gbuffers DIR."
                )
            results["game"].append(evaluate_game_clip(clip, config.extract))
        keys = ["flow_epe_px", "flow_epe_zero_baseline_px", "depth_spearman", "depth_spearman_row_prior_only"]
        results["game_mean"] = {k: float(np.mean([r[k] for r in results["game"]])) for k in keys}
    return results


def format_table(results: dict) -> str:
    rows = [("measurement", "extractor", "baseline")]
    for clip in results["game"]:
        name = Path(clip["clip"]).name
        rows.append(
            (
                f"game {name}: flow EPE px (lower better)",
                f"{clip['flow_epe_px']:.3f}",
                f"{clip['flow_epe_zero_baseline_px']:.3f} (zero flow)",
            )
        )
        rows.append(
            (
                f"game {name}: depth Spearman",
                f"{clip['depth_spearman']:.3f}",
                f"{clip['depth_spearman_row_prior_only']:.3f} (row prior)",
            )
        )
    aloe = results["aloe"]
    rows.append(
        (
            "aloe: depth Spearman",
            f"{aloe['depth_spearman']:.3f}",
            f"{aloe['depth_spearman_row_prior_only']:.3f} (row prior)",
        )
    )
    for video in results.get("lidar", []):
        rows.append(
            (
                f"{Path(video['video']).name} (LiDAR sidecar): depth Spearman",
                f"{video['depth_spearman']:.3f}",
                f"{video['depth_spearman_row_prior_only']:.3f} (row prior)",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
