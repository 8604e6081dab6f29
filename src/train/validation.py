"""Validation during training: autoregressive rollouts on held-out real clips and on a game ride.

Three kinds of numbers go into ``logs.jsonl``, because each alone misleads:

(a) real held-out clips, generated from their extracted G-buffers: PSNR/SSIM against the real
    frames, next to the same scores of the flat-colour condition used as the prediction (a
    regression-style baseline: PSNR/SSIM reward blurry averages);
(b) a recorded game autopilot ride: the temporal warp error of the generated frames under the
    game's exact flow (flicker), with the real clip's own warp error as the reference;
(c) realism of the game ride: the multi-scale sliced Wasserstein distance of local patch
    statistics between generated game frames and real held-out frames, with the raster
    frames' distance as the reference (lower = more like real video).

Grids (condition | generated | real or raster) are written as mp4 and PNG under ``samples/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from src.common.video import save_png, write_mp4
from src.eval.metrics import psnr, sliced_wasserstein_distance, ssim, temporal_warp_error
from src.runtime.backends import torch_renderer
from src.runtime.renderer import render_clip


def to_unit(frames: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return ((frames.float() + 1) / 2).clamp(0, 1)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``... c h w`` in [-1, 1] -> ``... h w c`` uint8."""
    unit = to_unit(frames)
    return (unit.movedim(-3, -1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


def grid_video(columns: list[torch.Tensor]) -> np.ndarray:
    """Columns of ``t 3 h w`` clips in [-1, 1] side by side -> ``t h (k w) 3`` uint8."""
    return np.concatenate([to_uint8(c) for c in columns], axis=2)


@torch.no_grad()
def run_validation(model, sampling, data, config, *, run_dir: Path, step: int) -> dict:
    """Run (a), (b) and (c) above with ``model`` (the EMA weights; any renderer model class,
    rendered through the renderer interface with ``sampling``); return the metrics, write the
    samples."""
    val = config.validation
    samples_dir = run_dir / "samples"
    height, width = data.frame_size
    renderer = torch_renderer(model, sampling=sampling, width=width, height=height)
    albedo = data.spec.slices().get("albedo")

    def generate(cond: torch.Tensor, seed: int) -> torch.Tensor:
        """A whole clip ``t C h w`` from a fresh context -> ``t 3 h w`` in [-1, 1]."""
        return torch.from_numpy(render_clip(renderer, cond, seed=seed))

    def flat_colour(cond: torch.Tensor) -> torch.Tensor:
        """The flat-colour condition planes (in [-1, 1]), or grey where the spec has none."""
        return cond[:, albedo] if albedo is not None else torch.zeros_like(cond[:, :3])

    metrics: dict[str, float] = {}

    # (a) real held-out clips
    clips = data.validation_clips(val.num_real_clips, val.rollout_frames)
    generated_real, real_frames, rows = [], [], []
    flat_scores, gen_psnr, gen_ssim, real_warp = [], [], [], []
    for index, clip in enumerate(clips):
        generated = generate(clip["cond"], seed=index)
        real = clip["frames"]
        flat = flat_colour(clip["cond"])
        gen_psnr.append(psnr(to_unit(generated), to_unit(real)))
        gen_ssim.append(ssim(to_unit(generated), to_unit(real)))
        flat_scores.append((psnr(to_unit(flat), to_unit(real)), ssim(to_unit(flat), to_unit(real))))
        if "flow_px" in clip:
            real_warp.append(temporal_warp_error(to_unit(real), clip["flow_px"]))
        generated_real.append(generated)
        real_frames.append(real)
        rows.append(grid_video([flat, generated, real]))
    if clips:
        metrics["real_psnr"] = float(np.mean(gen_psnr))
        metrics["real_ssim"] = float(np.mean(gen_ssim))
        metrics["real_flat_condition_psnr"] = float(np.mean([s[0] for s in flat_scores]))
        metrics["real_flat_condition_ssim"] = float(np.mean([s[1] for s in flat_scores]))
        if real_warp:
            metrics["real_video_warp_error"] = float(np.mean(real_warp))
        video = np.concatenate(rows, axis=1)  # clips stacked vertically
        write_mp4(samples_dir / f"real_step{step:07d}.mp4", video, fps=data.fps)
        # the picture: three frames of each of the first two clips
        picture = np.concatenate([_frame_strip(row, count=3) for row in rows[:2]], axis=0)
        save_png(samples_dir / f"real_step{step:07d}.png", picture)
        save_png(samples_dir / "real_latest.png", picture)

    # (b) and (c): the game ride
    game = data.game_validation_clip(
        val.game_rollout_frames, seed=val.game_seed, cache_dir=run_dir / "validation"
    )
    if game is not None:
        generated = generate(game["cond"], seed=1000)
        raster = game["raster"]
        metrics["game_warp_error"] = temporal_warp_error(to_unit(generated), game["flow_px"])
        metrics["game_raster_warp_error"] = temporal_warp_error(to_unit(raster), game["flow_px"])
        if real_frames:
            reference = to_unit(torch.cat(real_frames))
            swd_generated = sliced_wasserstein_distance(to_unit(generated), reference)
            swd_raster = sliced_wasserstein_distance(to_unit(raster), reference)
            metrics["game_swd_to_real"] = swd_generated["mean"]
            metrics["game_raster_swd_to_real"] = swd_raster["mean"]
        flat = flat_colour(game["cond"])
        video = grid_video([flat, generated, raster])
        write_mp4(samples_dir / f"game_step{step:07d}.mp4", video, fps=data.fps)
        save_png(samples_dir / f"game_step{step:07d}.png", _frame_strip(video))
        save_png(samples_dir / "game_latest.png", _frame_strip(video))
    return metrics


def _frame_strip(video: np.ndarray, count: int = 4) -> np.ndarray:
    """A few frames of a ``t h w 3`` video stacked vertically into one image."""
    index = np.linspace(0, len(video) - 1, num=min(count, len(video))).round().astype(int)
    return np.concatenate([video[i] for i in index], axis=0)
