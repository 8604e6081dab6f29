"""Scoring a renderer on real clips and on a game ride: the numbers ``evaluate`` writes and
validation logs, computed in one place.

Real clips (``open_real_clips``: fixed clips of a prepared dataset, encoded with the statistics
and spec the caller gives, i.e. a package's, as play does, read one at a time) are rendered from
a fresh context each and scored by ``score_real_clips`` (``src/eval/streaming.py``: one clip in
memory at a time):

    real_psnr, real_ssim              generated frames against the real frames (mean over clips)
    real_flat_psnr, real_flat_ssim    the same for the albedo (flat-colour) condition itself
    real_swd, real_flat_swd           sliced Wasserstein distance of all generated (flat) frames
                                      to all real frames (``sliced_wasserstein_distance``, x1e3),
                                      at most 512 of each (``num_real_swd_frames``)
    real_seam_ratio                   seams at the 8-px grid of the generated frames (1.0 = none);
    real_flat_seam_ratio,             ... of the flat condition and of the real frames
    real_video_seam_ratio
    real_warp_error                   flicker of the generated frames under the extracted flow;
    real_flat_warp_error,             ... of the flat condition and of the real video itself
    real_video_warp_error

With a ``FeatureScorer`` (``evaluate`` passes one; validation only with
``validation.feature_metrics``), the network-based measures join them:

    real_kid, real_kid_std            KID (Inception features, ``src/eval/inception.py``) of the
    real_flat_kid, real_flat_kid_std  generated (flat) frames to the real frames; mean and std
                                      over subsets
    real_fid, real_flat_fid           FID, null unless both sets hold FID_MIN_FRAMES frames
    real_lpips, real_flat_lpips       ST-LPIPS (AlexNet, ``src/eval/lpips.py``) of each generated
                                      (flat) frame to its real frame, mean over frames

and always (no weights, cheap):

    real_grid_peak, real_flat_grid_peak, real_video_grid_peak
                                      the largest spectral grid peak at 2, 4, 8, 16 px
                                      (``grid_peak``; natural frames 1-10)

The warp errors leave out motion boundaries and, where the clip has a forward flow (run by the
dataset's flow extractor the other way), pixels that fail the forward-backward check.

A game ride (``load_game_ride``: an autopilot ride's exact G-buffers, recorded once into a
folder, encoded with the given statistics) is scored by ``score_game_ride``:

    game_swd_to_real, game_raster_swd_to_real, game_flat_swd_to_real
                                      SWD of the generated / raster / albedo frames to real frames
    game_warp_error, game_raster_warp_error
                                      flicker under the game's exact flow, with motion boundaries
                                      and disocclusions (``depth_test_mask``) left out
    game_seam_ratio, game_raster_seam_ratio
    game_grid_peak, game_raster_grid_peak
    game_kid_to_real(_std), game_raster_kid_to_real(_std), game_fid_to_real,
    game_raster_fid_to_real           (with a ``FeatureScorer``) as on the real clips

``score_game_drift`` renders one long ride in one rollout and scores its first and last windows
(``game_late_*`` beside ``game_*``, and their ratios ``game_drift_swd``, ``game_drift_warp_error``).

All return the grid videos (condition | generated | real or raster) the pictures are made of.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from src.common.errors import UserError
from src.common.frames import frames_from_uint8
from src.common.gbuffer_io import load_gbuffer_clip
from src.conditions.align import align_game_clip
from src.conditions.encode import ConditionStats, encode
from src.conditions.spec import ConditionSpec
from src.conditions.warp import depth_test_mask, warp_error_mask
from src.data.loader import ClipDataset
from src.data.prepared import read_manifest, segments
from src.eval.inception import FID_MIN_FRAMES, InceptionFeatures
from src.eval.lpips import MIN_SIZE_PX as LPIPS_MIN_SIZE_PX
from src.eval.lpips import STLPIPS
from src.eval.metrics import grid_peak, seam_ratio, temporal_warp_error
from src.eval.real_clips import RealClips, forward_flow
from src.eval.streaming import (  # real clips are scored there, one at a time
    SEAM_GRID_PX,
    RealReference,
    RealScores,
    flat_colour,
    grid_video,
    kid_fid,
    score_real_clips,
    to_unit,
)
from src.game.raster import NoOpenGLContextError
from src.game.recording import record_autopilot_clip
from src.runtime.renderer import Renderer, render_clip

# also read from here: evaluate, validation, the benchmarks
__all__ = ["RealScores", "forward_flow", "grid_video", "score_real_clips", "to_unit"]


def frame_strip(video: np.ndarray, count: int = 4) -> np.ndarray:
    """A few frames of a ``t h w 3`` video, evenly spread, stacked vertically into one image."""
    index = np.linspace(0, len(video) - 1, num=min(count, len(video))).round().astype(int)
    return np.concatenate([video[i] for i in index], axis=0)


def _seams(frames: Tensor) -> float | None:
    """``seam_ratio`` at the 8-px grid, or None for frames too small to cross a grid line."""
    if max(frames.shape[-2:]) <= SEAM_GRID_PX:
        return None
    return seam_ratio(frames, grid=SEAM_GRID_PX)


def _grid(frames: Tensor) -> float | None:
    """``grid_peak``, or None for frames under 16 px a side."""
    return grid_peak(frames) if min(frames.shape[-2:]) >= 16 else None


class FeatureScorer:
    """KID/FID on the standard Inception features and ST-LPIPS, for ``score_*``. The networks
    load on first use; Inception features are computed once per frame set (cached by content),
    so the real frames every game and drift window is compared with pass through it once."""

    def __init__(self, *, device: str = "cpu"):
        self.inception = InceptionFeatures(device=device)
        self.lpips = STLPIPS(device=device)

    def kid_fid(
        self, name: str, frames: Tensor, reference: Tensor | RealReference
    ) -> dict[str, float | None]:
        """``name`` (KID mean), ``name_std`` and the FID key (``kid`` -> ``fid`` in ``name``)
        of ``frames`` to ``reference`` (``n 3 h w`` in [0, 1] each, or a ``RealReference``:
        the features of all its frames)."""
        if isinstance(reference, RealReference):
            theirs = (
                reference.features if reference.features is not None else self.inception(reference.frames)
            )
        else:
            theirs = self.inception(reference)
        return kid_fid(name, self.inception(frames), theirs)

    def mean_lpips(self, frames: Tensor, reference: Tensor) -> float | None:
        """Mean ST-LPIPS of frame i to reference frame i; None for frames too small for it."""
        if min(frames.shape[-2:]) < LPIPS_MIN_SIZE_PX:
            return None
        return float(self.lpips(frames, reference).mean())


def fid_note(metrics: dict) -> str | None:
    """Why the FID keys are null where KID was measured (too few frames), or None."""
    if metrics.get("real_kid") is not None and metrics.get("real_fid") is None:
        frames = metrics.get("num_real_frames")
        have = f" (the real clips have {frames})" if frames is not None else ""
        return f"FID not reported: it needs {FID_MIN_FRAMES} frames per set for a full-rank covariance{have}; KID is unbiased at any size"
    return None


# ---------------------------------------------------------------------------------------------
# real clips


def load_real_clips(dataset: str | Path, **settings) -> list[dict]:
    """Every clip of ``open_real_clips(dataset, **settings)``, read at once (a few, for validation)."""
    return list(open_real_clips(dataset, **settings))


def open_real_clips(
    dataset: str | Path,
    *,
    split: str,
    clip_frames: int,
    num_clips: int | None,
    spec: ConditionSpec,
    stats: ConditionStats | None,
    with_forward_flow: bool = True,
) -> RealClips | list:
    """Fixed clips (evenly spread, whole frames, unaugmented) of a prepared dataset's ``split``
    (train, val or all), conditions encoded with ``spec`` and ``stats`` (None: the dataset's),
    each read when an iteration reaches it (``RealClips`` says what a clip holds).

    ``num_clips`` None takes as many as fit without overlapping, and at most the distinct clips.
    """
    manifest = read_manifest(dataset)
    width, height = (int(v) for v in manifest["resolution"])
    if num_clips is None:
        num_clips = sum(s["num_frames"] // clip_frames for s in segments(manifest, split))
        if num_clips == 0:
            raise UserError(
                f"no {split} part of {dataset} has {clip_frames} frames for one clip",
                "Use fewer --clip_frames, or longer videos / a higher fps.",
            )
    if num_clips < 1:
        return []
    # every distinct start frame is one clip: more than that would repeat clips (and their memory)
    distinct = sum(max(0, s["num_frames"] - clip_frames + 1) for s in segments(manifest, split))
    if distinct == 0:
        raise UserError(
            f"no {split} part of {dataset} has {clip_frames} frames for one clip",
            "Use fewer --clip_frames, or longer videos / a higher fps.",
        )
    if num_clips > distinct:
        print(
            f"note: {split} of {dataset} holds {distinct} distinct {clip_frames}-frame clip(s), not {num_clips}: "
            f"using {distinct}",
            flush=True,
        )
        num_clips = distinct
    clips_set = ClipDataset(
        dataset,
        split=split,
        clip_frames=clip_frames,
        crop=(height, width),
        seed=0,
        spec=spec,
        stats=stats,
        num_val_clips=num_clips,
        fixed_clips=True,
    )
    dis_preset = manifest.get("extract_config", {}).get("dis_preset", "medium")
    return RealClips(clips_set, num_clips, dis_preset=dis_preset, with_forward_flow=with_forward_flow)


# ---------------------------------------------------------------------------------------------
# the game ride


def record_ride(
    directory: Path, *, size: tuple[int, int], frames: int, seed: int, fps: float, level: str | None = None
) -> Path:
    """Record an autopilot ride's exact G-buffers (headless) into ``directory``, on ``level``'s
    world (None: the default one): the one place evaluation and validation record rides."""
    height, width = size
    return record_autopilot_clip(
        directory, width=width, height=height, frames=frames, seed=seed, fps=max(1, round(fps)), level=level
    )


def load_game_ride(
    cache_dir: str | Path,
    *,
    size: tuple[int, int],
    frames: int,
    seed: int,
    fps: float,
    spec: ConditionSpec,
    stats: ConditionStats,
    offset_frames: int = 0,
    level: str | None = None,
) -> dict | None:
    """An autopilot ride of ``frames`` frames at ``size`` (height, width), after skipping its
    first ``offset_frames``, encoded like play does (``spec``, ``stats``, the game's field of view),
    on ``level``'s world (a ``game/levels/*.yaml`` file; None: the default one).

    The ride is recorded once into a folder under ``cache_dir`` named by its settings and read
    from there afterwards. Returns ``cond`` t C h w, ``raster`` t 3 h w in [-1, 1], ``flow_px``
    t h w 2 (exact) and ``valid_mask`` t h w (motion boundaries, disocclusions and restarts left
    out), or None where no OpenGL context can be made (a GPU server without EGL), saying so.
    """
    height, width = size
    total = offset_frames + frames
    fps_name = f"{fps:g}".replace(".", "p")
    level_name = f"_{Path(level).stem}" if level else ""
    clip_dir = Path(cache_dir) / f"game_seed{seed}_{total}f_{width}x{height}_{fps_name}fps{level_name}"
    if frames <= 0:
        print(f"game ride skipped: {frames} frames asked for")
        return None
    import moderngl

    try:
        record_ride(clip_dir, size=size, frames=total, seed=seed, fps=fps, level=level)
    except (NoOpenGLContextError, moderngl.Error) as error:  # a GPU server without EGL, say
        print(f"game ride skipped: {type(error).__name__}: {error}")
        return None
    arrays, meta = load_gbuffer_clip(clip_dir)
    # the spec's game-side transforms run over the whole ride, frame by frame as in play
    aligned, depth_kind = align_game_clip(arrays, spec, depth_kind=meta.get("depth_kind", "metric"))
    arrays = {key: value[offset_frames:] for key, value in arrays.items()}
    aligned = {key: value[offset_frames:] for key, value in aligned.items()}
    cond = encode(
        {k: aligned[k] for k in ("albedo", "depth", "flow", "normals") if k in aligned},
        spec=spec,
        stats=stats,
        depth_kind=depth_kind,
        fov_y_deg=meta.get("fov_y_deg"),
    )  # t C h w
    flow = torch.from_numpy(arrays["flow"].astype(np.float32))
    valid = warp_error_mask(flow)
    if meta.get("depth_kind", "metric") == "metric":
        valid = valid * depth_test_mask(torch.from_numpy(arrays["depth"].astype(np.float32)), flow)
    if "new_run" in arrays:  # a restart: the frame before it is another run
        valid[torch.from_numpy(arrays["new_run"].astype(bool))] = 0
    raster = frames_from_uint8(arrays["color"])
    return {"cond": cond, "raster": raster, "flow_px": flow, "valid_mask": valid}


@torch.no_grad()
def score_game_ride(
    renderer: Renderer,
    ride: dict,
    *,
    spec: ConditionSpec,
    real_frames: Tensor | None,
    seed: int = 1000,
    features: FeatureScorer | None = None,
) -> tuple[dict[str, float | None], np.ndarray]:
    """Render the ride from a fresh context and score it (see the module docstring); the SWD
    and KID keys need ``real_frames`` (``n 3 h w`` in [0, 1]), the KID ones ``features``.
    Returns the metrics and the grid video (flat condition | generated | raster)."""
    generated = to_unit(torch.from_numpy(render_clip(renderer, ride["cond"], seed=seed)))
    return score_game_frames(generated, ride, spec=spec, real_frames=real_frames, features=features)


def score_game_frames(
    generated: Tensor,
    ride: dict,
    *,
    spec: ConditionSpec,
    real_frames: Tensor | RealReference | None,
    features: FeatureScorer | None = None,
) -> tuple[dict[str, float | None], np.ndarray]:
    """``score_game_ride`` of frames already generated (``t 3 h w`` in [0, 1]) for ``ride``."""
    raster, flat = to_unit(ride["raster"]), to_unit(flat_colour(ride["cond"], spec))
    flow, valid = ride["flow_px"], ride.get("valid_mask")
    metrics: dict[str, float | None] = {
        "game_warp_error": temporal_warp_error(generated, flow, valid_mask=valid),
        "game_raster_warp_error": temporal_warp_error(raster, flow, valid_mask=valid),
        "game_seam_ratio": _seams(generated),
        "game_raster_seam_ratio": _seams(raster),
        "game_grid_peak": _grid(generated),
        "game_raster_grid_peak": _grid(raster),
    }
    if real_frames is not None and len(real_frames):
        reference = (
            real_frames
            if isinstance(real_frames, RealReference)
            else RealReference(real_frames, len(real_frames))
        )
        metrics["game_swd_to_real"] = reference.swd(generated)
        metrics["game_raster_swd_to_real"] = reference.swd(raster)
        metrics["game_flat_swd_to_real"] = reference.swd(flat)
        if features is not None:
            metrics |= features.kid_fid("game_kid_to_real", generated, real_frames)
            metrics |= features.kid_fid("game_raster_kid_to_real", raster, real_frames)
    return metrics, grid_video([flat * 2 - 1, generated * 2 - 1, raster * 2 - 1])


@torch.no_grad()
def score_game_drift(
    renderer: Renderer,
    ride: dict,
    *,
    window_frames: int,
    spec: ConditionSpec,
    real_frames: Tensor | None,
    seed: int = 1000,
    features: FeatureScorer | None = None,
) -> tuple[dict[str, float | None], np.ndarray]:
    """Render the whole ride in one rollout (one context, as a long play session) and score its
    first and its last ``window_frames`` frames: the ``game_*`` keys of the first window, the same
    keys as ``game_late_*`` for the last, and ``game_drift_swd`` / ``game_drift_warp_error``, the
    late value over the early one (1.0 = no drift). Returns the metrics and the grid video of
    both windows, one after the other."""
    generated = to_unit(torch.from_numpy(render_clip(renderer, ride["cond"], seed=seed)))
    t = generated.shape[0]
    windows = {"early": slice(0, window_frames), "late": slice(t - window_frames, t)}
    metrics: dict[str, float | None] = {}
    videos = []
    for name, window in windows.items():
        part = {key: value[window] for key, value in ride.items()}
        scores, video = score_game_frames(
            generated[window], part, spec=spec, real_frames=real_frames, features=features
        )
        prefix = "game_" if name == "early" else "game_late_"
        metrics |= {prefix + key.removeprefix("game_"): value for key, value in scores.items()}
        videos.append(video)
    for key in ("swd_to_real", "warp_error"):
        early, late = metrics.get(f"game_{key}"), metrics.get(f"game_late_{key}")
        name = "game_drift_swd" if key == "swd_to_real" else "game_drift_warp_error"
        metrics[name] = late / early if early and late is not None else None
    metrics["game_late_start_frame"] = t - window_frames
    return metrics, np.concatenate(videos)
