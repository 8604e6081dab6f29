"""Scoring a renderer on real clips and on a game ride: the numbers ``evaluate`` writes and
validation logs, computed in one place.

Real clips (``load_real_clips``: fixed clips of a prepared dataset, encoded with the statistics
and spec the caller gives, i.e. a package's, as play does) are rendered from a fresh context
each and scored by ``score_real_clips``:

    real_psnr, real_ssim              generated frames against the real frames (mean over clips)
    real_flat_psnr, real_flat_ssim    the same for the albedo (flat-colour) condition itself
    real_swd, real_flat_swd           sliced Wasserstein distance of all generated (flat) frames
                                      to all real frames (``sliced_wasserstein_distance``, x1e3)
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

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from src.common.errors import UserError
from src.common.frames import frames_from_uint8, frames_to_uint8
from src.common.gbuffer_io import load_gbuffer_clip
from src.conditions.align import align_game_clip
from src.conditions.encode import ConditionStats, encode
from src.conditions.flow import DISFlow
from src.conditions.spec import ConditionSpec
from src.conditions.warp import depth_test_mask, warp_error_mask
from src.data.loader import ClipDataset
from src.data.prepared import read_manifest, segments
from src.eval.inception import (
    FID_MIN_FRAMES,
    InceptionFeatures,
    frechet_inception_distance,
    kernel_inception_distance,
)
from src.eval.lpips import MIN_SIZE_PX as LPIPS_MIN_SIZE_PX
from src.eval.lpips import STLPIPS
from src.eval.metrics import (
    grid_peak,
    psnr,
    seam_ratio,
    sliced_wasserstein_distance,
    ssim,
    temporal_warp_error,
)
from src.game.raster import NoOpenGLContextError
from src.game.recording import record_autopilot_clip
from src.runtime.renderer import Renderer, render_clip

SEAM_GRID_PX = 8


def to_unit(frames: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1]."""
    return ((frames.float() + 1) / 2).clamp(0, 1)


def grid_video(columns: list[Tensor]) -> np.ndarray:
    """Columns of ``t 3 h w`` clips in [-1, 1] side by side -> ``t h (k w) 3`` uint8."""
    return np.concatenate([frames_to_uint8(c) for c in columns], axis=2)


def frame_strip(video: np.ndarray, count: int = 4) -> np.ndarray:
    """A few frames of a ``t h w 3`` video, evenly spread, stacked vertically into one image."""
    index = np.linspace(0, len(video) - 1, num=min(count, len(video))).round().astype(int)
    return np.concatenate([video[i] for i in index], axis=0)


def flat_colour(cond: Tensor, spec: ConditionSpec) -> Tensor:
    """The albedo planes of ``t C h w`` encoded conditions (``t 3 h w`` in [-1, 1]), or grey
    where the spec has no albedo channel."""
    albedo = spec.slices().get("albedo")
    return cond[:, albedo] if albedo is not None else torch.zeros_like(cond[:, :3])


def _seams(frames: Tensor) -> float | None:
    """``seam_ratio`` at the 8-px grid, or None for frames too small to cross a grid line."""
    if max(frames.shape[-2:]) <= SEAM_GRID_PX:
        return None
    return seam_ratio(frames, grid=SEAM_GRID_PX)


def _swd(frames: Tensor, reference: Tensor, *, seed: int = 0) -> float:
    return sliced_wasserstein_distance(frames, reference, seed=seed)["mean"]


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

    def kid_fid(self, name: str, frames: Tensor, reference: Tensor) -> dict[str, float | None]:
        """``name`` (KID mean), ``name_std`` and the FID key (``kid`` -> ``fid`` in ``name``)
        of ``frames`` to ``reference`` (``n 3 h w`` in [0, 1] each)."""
        ours, theirs = self.inception(frames), self.inception(reference)
        kid = kernel_inception_distance(ours, theirs)
        return {
            name: kid["mean"] if kid else None,
            f"{name}_std": kid["std"] if kid else None,
            name.replace("kid", "fid"): frechet_inception_distance(ours, theirs),
        }

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


def forward_flow(frames: np.ndarray, *, dis_preset: str = "medium") -> Tensor:
    """``t h w 2`` forward flow of ``t h w 3`` uint8 frames: entry t is the motion
    ``x_t - x_{t-1}`` at pixels of frame t-1 (entry 0 zero), by the same DIS extractor run the
    other way; what ``warp_error_mask`` needs for its forward-backward occlusion check."""
    dis = DISFlow(dis_preset)
    out = np.zeros(frames.shape[:3] + (2,), np.float32)
    for t in range(1, len(frames)):
        out[t] = -dis(frames[t], frames[t - 1])  # at pixels of t-1: x_{t-1} - x_t, negated
    return torch.from_numpy(out)


def load_real_clips(
    dataset: str | Path,
    *,
    split: str,
    clip_frames: int,
    num_clips: int | None,
    spec: ConditionSpec,
    stats: ConditionStats | None,
    with_forward_flow: bool = True,
) -> list[dict]:
    """Fixed clips (evenly spread, whole frames, unaugmented) of a prepared dataset's ``split``
    (train, val or all), conditions encoded with ``spec`` and ``stats`` (None: the dataset's).

    ``num_clips`` None takes as many as fit without overlapping. Each clip: ``frames`` t 3 h w in
    [-1, 1], ``cond`` t C h w, ``flow_px`` t h w 2 (the extracted flow), ``forward_flow_px``
    t h w 2 (with ``with_forward_flow``), ``video`` (its source's id) and ``start`` (its first
    frame in the split's segment).
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
    clips = []
    for index in range(num_clips):
        raw = clips_set.raw_clip(index)  # read once: the item and the flows come from it
        item = clips_set.clip_from_raw(raw, index)
        video, frame_ids = clips_set.clip_source(index)
        clip = {
            "frames": item["frames"],
            "cond": item["cond"],
            "flow_px": torch.from_numpy(raw["flow"].astype(np.float32)),
            "video": video,
            "start": frame_ids[0],
        }
        if with_forward_flow:
            clip["forward_flow_px"] = forward_flow(raw["frames"], dis_preset=dis_preset)
        clips.append(clip)
    return clips


@dataclasses.dataclass
class RealScores:
    metrics: dict[str, float | None]
    rows: list[np.ndarray]  # per clip, t h (3 w) 3 uint8: flat condition | generated | real
    real_frames: Tensor  # n 3 h w in [0, 1], every real frame: the reference for SWD


@torch.no_grad()
def score_real_clips(
    renderer: Renderer,
    clips: list[dict],
    *,
    spec: ConditionSpec,
    seed: int = 0,
    progress: bool = False,
    features: FeatureScorer | None = None,
) -> RealScores:
    """Render every clip from a fresh context (clip i with seed ``seed + i``) and score it (see
    the module docstring for the keys; the KID/FID/LPIPS ones with ``features``)."""
    from src.common.progress import tqdm  # plain lines when the output is not a terminal

    psnrs, ssims, flat_psnrs, flat_ssims = [], [], [], []
    warp = {"generated": [], "flat": [], "video": []}
    generated_all, flat_all, real_all, rows = [], [], [], []
    for index, clip in enumerate(tqdm(clips, desc="real clips", unit="clip", disable=not progress)):
        generated = to_unit(torch.from_numpy(render_clip(renderer, clip["cond"], seed=seed + index)))
        flat, real = to_unit(flat_colour(clip["cond"], spec)), to_unit(clip["frames"])
        psnrs.append(psnr(generated, real))
        ssims.append(ssim(generated, real))
        flat_psnrs.append(psnr(flat, real))
        flat_ssims.append(ssim(flat, real))
        mask = warp_error_mask(clip["flow_px"], forward_flow_px=clip.get("forward_flow_px"))
        for name, frames in (("generated", generated), ("flat", flat), ("video", real)):
            warp[name].append(temporal_warp_error(frames, clip["flow_px"], valid_mask=mask))
        generated_all.append(generated)
        flat_all.append(flat)
        real_all.append(real)
        rows.append(grid_video([flat * 2 - 1, generated * 2 - 1, real * 2 - 1]))
    if not clips:
        return RealScores(metrics={}, rows=[], real_frames=torch.zeros(0, 3, 1, 1))
    generated_all, flat_all, real_all = torch.cat(generated_all), torch.cat(flat_all), torch.cat(real_all)
    metrics = {
        "real_psnr": float(np.mean(psnrs)),
        "real_ssim": float(np.mean(ssims)),
        "real_flat_psnr": float(np.mean(flat_psnrs)),
        "real_flat_ssim": float(np.mean(flat_ssims)),
        "real_swd": _swd(generated_all, real_all),
        "real_flat_swd": _swd(flat_all, real_all),
        "real_seam_ratio": _seams(generated_all),
        "real_flat_seam_ratio": _seams(flat_all),
        "real_video_seam_ratio": _seams(real_all),
        "real_warp_error": float(np.mean(warp["generated"])),
        "real_flat_warp_error": float(np.mean(warp["flat"])),
        "real_video_warp_error": float(np.mean(warp["video"])),
        "real_grid_peak": _grid(generated_all),
        "real_flat_grid_peak": _grid(flat_all),
        "real_video_grid_peak": _grid(real_all),
    }
    if features is not None:
        metrics |= features.kid_fid("real_kid", generated_all, real_all)
        metrics |= features.kid_fid("real_flat_kid", flat_all, real_all)
        metrics["real_lpips"] = features.mean_lpips(generated_all, real_all)
        metrics["real_flat_lpips"] = features.mean_lpips(flat_all, real_all)
    return RealScores(metrics=metrics, rows=rows, real_frames=real_all)


# ---------------------------------------------------------------------------------------------
# the game ride


def record_ride(directory: Path, *, size: tuple[int, int], frames: int, seed: int, fps: float) -> Path:
    """Record an autopilot ride's exact G-buffers (headless) into ``directory``: the one place
    evaluation and validation record rides."""
    height, width = size
    return record_autopilot_clip(
        directory, width=width, height=height, frames=frames, seed=seed, fps=max(1, round(fps))
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
) -> dict | None:
    """An autopilot ride of ``frames`` frames at ``size`` (height, width), after skipping its
    first ``offset_frames``, encoded like play does (``spec``, ``stats``, the game's field of view).

    The ride is recorded once into a folder under ``cache_dir`` named by its settings and read
    from there afterwards. Returns ``cond`` t C h w, ``raster`` t 3 h w in [-1, 1], ``flow_px``
    t h w 2 (exact) and ``valid_mask`` t h w (motion boundaries, disocclusions and restarts left
    out), or None where no OpenGL context can be made (a GPU server without EGL), saying so.
    """
    height, width = size
    total = offset_frames + frames
    fps_name = f"{fps:g}".replace(".", "p")
    clip_dir = Path(cache_dir) / f"game_seed{seed}_{total}f_{width}x{height}_{fps_name}fps"
    if frames <= 0:
        print(f"game ride skipped: {frames} frames asked for")
        return None
    import moderngl

    try:
        record_ride(clip_dir, size=size, frames=total, seed=seed, fps=fps)
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
    real_frames: Tensor | None,
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
        metrics["game_swd_to_real"] = _swd(generated, real_frames)
        metrics["game_raster_swd_to_real"] = _swd(raster, real_frames)
        metrics["game_flat_swd_to_real"] = _swd(flat, real_frames)
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
