"""Validation during training: autoregressive rollouts on held-out real clips and on a game ride.

Three kinds of numbers go into ``logs.jsonl``, because each alone misleads:

(a) real held-out clips, generated from their extracted G-buffers: PSNR/SSIM against the real
    frames, next to the same scores of the flat-colour condition used as the prediction (a
    regression-style baseline: PSNR/SSIM reward blurry averages), with SWD, seam ratio and warp
    error beside them;
(b) a recorded game autopilot ride: the temporal warp error of the generated frames under the
    game's exact flow (flicker), with the real clip's own warp error as the reference;
(c) realism of the game ride: the multi-scale sliced Wasserstein distance of local patch
    statistics between generated game frames and real held-out frames, with the raster
    frames' distance as the reference (lower = more like real video); with
    ``validation.feature_metrics`` also KID to the real frames and ST-LPIPS, as ``evaluate``.

Grids (condition | generated | real or raster) are written as mp4 and PNG under ``samples/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from src.common.video import save_png, write_mp4
from src.eval.scoring import FeatureScorer, frame_strip, score_game_ride, score_real_clips
from src.runtime.backends import torch_renderer


@torch.no_grad()
def run_validation(model, sampling, data, config, *, run_dir: Path, step: int) -> dict:
    """Run (a), (b) and (c) above with ``model`` (the EMA weights; any renderer model class,
    rendered through the renderer interface with ``sampling``); return the metrics, write the
    samples. The scoring is ``evaluate``'s (``src/eval/scoring.py``), so the keys are its keys."""
    val = config.validation
    samples_dir = run_dir / "samples"
    height, width = data.frame_hw
    renderer = torch_renderer(model, sampling=sampling, width=width, height=height)
    device = next(model.parameters(), torch.zeros(0)).device  # the flat baseline has no weights
    features = FeatureScorer(device=str(device)) if val.feature_metrics else None  # KID, LPIPS

    # (a) real held-out clips
    clips = data.validation_clips(val.num_real_clips, val.rollout_frames)
    real = score_real_clips(renderer, clips, spec=data.spec, features=features)
    metrics: dict[str, float] = {k: v for k, v in real.metrics.items() if v is not None}
    if real.rows:
        video = np.concatenate(real.rows, axis=1)  # clips stacked vertically
        write_mp4(samples_dir / f"real_step{step:07d}.mp4", video, fps=data.fps)
        # the picture: three frames of each of the first two clips
        picture = np.concatenate([frame_strip(row, count=3) for row in real.rows[:2]], axis=0)
        save_png(samples_dir / f"real_step{step:07d}.png", picture)
        save_png(samples_dir / "real_latest.png", picture)

    # (b) and (c): the game ride
    game = data.game_validation_clip(
        val.game_rollout_frames,
        seed=val.game_seed,
        cache_dir=run_dir / "validation",
        level=config.data.game_level,
    )
    if game is not None:
        game_metrics, video = score_game_ride(
            renderer,
            game,
            spec=data.spec,
            real_frames=real.real_frames if real.rows else None,
            features=features,
        )
        metrics.update({k: v for k, v in game_metrics.items() if v is not None})
        write_mp4(samples_dir / f"game_step{step:07d}.mp4", video, fps=data.fps)
        save_png(samples_dir / f"game_step{step:07d}.png", frame_strip(video))
        save_png(samples_dir / "game_latest.png", frame_strip(video))
    return metrics
