"""Real clips scored one at a time: memory that does not grow with the number of clips.

``evaluate --num_clips 1000`` held every generated, flat and real frame until the end (12 GB).
``score_real_clips`` renders and scores each clip, then drops its frames, keeping:

- PSNR, SSIM and the warp errors: one number per clip (their mean over clips, as before);
- the seam ratios and grid peaks: running sums (the same ratio of means, up to float rounding);
- KID/FID: each frame's Inception features (2048 numbers, not the frame); ST-LPIPS: one number
  per frame;
- SWD (``real_swd``, ``real_flat_swd``): the frames of at most ``swd_max_frames`` frames, every
  clip when they fit (then the numbers are the ones all frames give), else whole clips evenly
  spread over all of them (``num_real_swd_frames`` says how many);
- the game ride's reference (``RealReference``): the first ``reference_frames`` real frames (SWD
  compares a ride with as many real frames as it has, the first ones) and every real frame's
  Inception features;
- the encoded conditions of the frames the condition-gap classifier picks (``gap_frames`` evenly
  spread over all of them, as ``condition_gap_accuracy`` picks them);
- the grid videos (flat | generated | real) of the first ``keep_rows`` clips, for the pictures.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor

from src.common.frames import frames_to_uint8
from src.common.progress import tqdm
from src.conditions.spec import ConditionSpec
from src.conditions.warp import warp_error_mask
from src.eval.inception import frechet_inception_distance, kernel_inception_distance
from src.eval.lpips import MIN_SIZE_PX as LPIPS_MIN_SIZE_PX
from src.eval.metrics import (
    grid_power,
    peaks_from_power,
    psnr,
    sliced_wasserstein_distance,
    ssim,
    temporal_warp_error,
)
from src.runtime.renderer import Renderer, render_clip

SEAM_GRID_PX = 8
SWD_MAX_FRAMES = 512  # frames per set SWD sees at most (3 sets of 224x224: 0.9 GB)
KEEP_ROWS = 16  # clips in real.mp4 / the validation video


def to_unit(frames: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1]."""
    return ((frames.float() + 1) / 2).clamp(0, 1)


def grid_video(columns: list[Tensor]) -> np.ndarray:
    """Columns of ``t 3 h w`` clips in [-1, 1] side by side -> ``t h (k w) 3`` uint8."""

    return np.concatenate([frames_to_uint8(c) for c in columns], axis=2)


def flat_colour(cond: Tensor, spec: ConditionSpec) -> Tensor:
    """The albedo planes of ``t C h w`` encoded conditions (``t 3 h w`` in [-1, 1]), or grey
    where the spec has no albedo channel."""
    albedo = spec.slices().get("albedo")
    return cond[:, albedo] if albedo is not None else torch.zeros_like(cond[:, :3])


def evenly(total: int, count: int) -> np.ndarray:
    """``count`` indices spread evenly over ``range(total)``, first and last included."""
    return np.linspace(0, total - 1, count).round().astype(int)


class SeamSums:
    """``seam_ratio`` at the 8-px grid over frames given a clip at a time: sums of the jumps across
    the grid lines and elsewhere; the ratio of their means is ``seam_ratio`` of all of them."""

    def __init__(self, grid: int = SEAM_GRID_PX):
        self.grid, self.sums, self.counts = grid, [0.0, 0.0], [0, 0]

    def add(self, frames: Tensor) -> None:
        x = frames.float()
        h, w = x.shape[-2:]
        across_columns = (x[..., :, 1:] - x[..., :, :-1]).abs()
        across_rows = (x[..., 1:, :] - x[..., :-1, :]).abs()
        on_column = torch.arange(1, w) % self.grid == 0
        on_row = torch.arange(1, h) % self.grid == 0
        for slot, (columns, rows) in enumerate(((on_column, on_row), (~on_column, ~on_row))):
            for part in (across_columns[..., columns], across_rows[..., rows, :]):
                self.sums[slot] += float(part.double().sum())
                self.counts[slot] += part.numel()

    def ratio(self, size: tuple[int, int]) -> float | None:
        """None for frames too small to cross a grid line (as ``scoring._seams``)."""
        if max(size) <= self.grid or not self.counts[0]:
            return None
        return (self.sums[0] / self.counts[0]) / max(self.sums[1] / max(self.counts[1], 1), 1e-12)


class GridPowerSums:
    """``grid_peak`` over frames given a clip at a time: the tile power spectrum summed."""

    def __init__(self):
        self.power, self.count, self.size = None, 0, 0

    def add(self, frames: Tensor) -> None:
        if min(frames.shape[-2:]) < 16:
            return
        power, count, self.size = grid_power(frames)
        self.power = power if self.power is None else self.power + power
        self.count += count

    def peak(self) -> float | None:
        if self.power is None:
            return None
        return max(peaks_from_power(self.power / self.count, self.size).values())


@dataclasses.dataclass
class RealReference:
    """The real frames a game ride is compared with: the first ``len(frames)`` of ``count`` real
    frames (``n 3 h w`` in [0, 1]) and, where measured, the ``count 2048`` Inception features of
    all of them."""

    frames: Tensor
    count: int
    features: Tensor | None = None

    def swd(self, generated: Tensor) -> float:
        """SWD of ``generated`` to the real frames, the number all ``count`` of them give when
        the ride has at most ``len(frames)`` frames (SWD compares as many as the smaller set has)."""
        return sliced_wasserstein_distance(generated, self.frames, reference_count=self.count)["mean"]

    def __len__(self) -> int:
        return self.count


@dataclasses.dataclass
class RealScores:
    metrics: dict[str, float | None]
    rows: list[np.ndarray]  # the first clips', t h (3 w) 3 uint8: flat condition | generated | real
    real_frames: RealReference  # what a game ride is scored against
    clips: list[dict] = dataclasses.field(default_factory=list)  # per clip: video, start
    gap_cond: np.ndarray | None = None  # t C h w: the conditions the condition-gap classifier sees


SETS = ("generated", "flat", "real")
_MEANS = {  # key (after real_) -> (set, measure): one number per clip, their mean over clips
    "psnr": ("generated", "psnr"),
    "ssim": ("generated", "ssim"),
    "flat_psnr": ("flat", "psnr"),
    "flat_ssim": ("flat", "ssim"),
    "warp_error": ("generated", "warp"),
    "flat_warp_error": ("flat", "warp"),
    "video_warp_error": ("real", "warp"),
}
_PREFIX = {"generated": "real_", "flat": "real_flat_", "real": "real_video_"}


class _Scorer:
    """The running state of ``score_real_clips`` (see the module docstring)."""

    def __init__(self, num_clips: int, *, features, swd_max_frames, reference_frames, keep_rows, gap_frames):
        self.num_clips, self.features, self.keep_rows = num_clips, features, keep_rows
        self.swd_max_frames, self.reference_frames, self.gap_frames = swd_max_frames, reference_frames, gap_frames  # fmt: skip
        self.means: dict[str, list[float]] = {key: [] for key in _MEANS}
        self.seams = {name: SeamSums() for name in SETS}
        self.grids = {name: GridPowerSums() for name in SETS}
        self.swd_sets: dict[str, list[Tensor]] = {name: [] for name in SETS}
        self.inception: dict[str, list[Tensor]] = {name: [] for name in SETS}
        self.lpips: dict[str, list[Tensor]] = {"generated": [], "flat": []}
        self.prefix: list[Tensor] = []  # the first real frames (RealReference)
        self.gap: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []
        self.clips: list[dict] = []
        self.frames, self.swd_clips, self.gap_index = 0, None, None

    def _select(self, clip_frames: int) -> None:
        """Which clips SWD sees and which frames the condition gap sees (once the clip length is known)."""
        total, fitting = self.num_clips * clip_frames, max(1, self.swd_max_frames // clip_frames)
        every = self.num_clips <= fitting
        self.swd_clips = set(range(self.num_clips) if every else evenly(self.num_clips, fitting).tolist())
        self.gap_index = evenly(total, min(total, self.gap_frames)) if self.gap_frames else np.zeros(0, int)

    def add(self, index: int, clip: dict, generated: Tensor, spec: ConditionSpec) -> None:
        sets = {"generated": generated, "flat": to_unit(flat_colour(clip["cond"], spec)), "real": to_unit(clip["frames"])}  # fmt: skip
        real, t = sets["real"], len(sets["real"])
        if self.swd_clips is None:
            self._select(t)
        mask = warp_error_mask(clip["flow_px"], forward_flow_px=clip.get("forward_flow_px"))
        measures = {
            "psnr": lambda frames: psnr(frames, real),
            "ssim": lambda frames: ssim(frames, real),
            "warp": lambda frames: temporal_warp_error(frames, clip["flow_px"], valid_mask=mask),
        }
        for key, (name, measure) in _MEANS.items():
            self.means[key].append(measures[measure](sets[name]))
        for name, frames in sets.items():
            self.seams[name].add(frames)
            self.grids[name].add(frames)
            if index in self.swd_clips:
                self.swd_sets[name].append(frames)
        kept = sum(len(frames) for frames in self.prefix)
        if kept < self.reference_frames:
            self.prefix.append(real[: self.reference_frames - kept])
        if self.features is not None:
            self._add_features(sets)
        picked = self.gap_index[(self.gap_index >= self.frames) & (self.gap_index < self.frames + t)]
        if len(picked):
            self.gap.append(np.asarray(clip["cond"][picked - self.frames], np.float32))
        self.frames += t
        if len(self.rows) < self.keep_rows:
            self.rows.append(grid_video([sets[name] * 2 - 1 for name in ("flat", "generated", "real")]))
        self.clips.append({"video": clip.get("video"), "start": int(clip.get("start", 0))})

    def _add_features(self, sets: dict[str, Tensor]) -> None:
        for name, frames in sets.items():
            self.inception[name].append(self.features.inception.features(frames))
        if min(sets["real"].shape[-2:]) >= LPIPS_MIN_SIZE_PX:
            for name in self.lpips:
                self.lpips[name].append(self.features.lpips(sets[name], sets["real"]))

    def result(self, size: tuple[int, int]) -> RealScores:
        metrics: dict[str, float | None] = {f"real_{key}": float(np.mean(v)) for key, v in self.means.items()}
        swd = {name: torch.cat(frames) for name, frames in self.swd_sets.items()}
        metrics["real_swd"] = sliced_wasserstein_distance(swd["generated"], swd["real"])["mean"]
        metrics["real_flat_swd"] = sliced_wasserstein_distance(swd["flat"], swd["real"])["mean"]
        metrics["num_real_swd_frames"] = len(swd["real"])
        for name, prefix in _PREFIX.items():
            metrics[f"{prefix}seam_ratio"] = self.seams[name].ratio(size)
            metrics[f"{prefix}grid_peak"] = self.grids[name].peak()
        features = None
        if self.features is not None:
            features = {name: torch.cat(parts) for name, parts in self.inception.items()}
            for name, key in (("generated", "real_kid"), ("flat", "real_flat_kid")):
                metrics |= kid_fid(key, features[name], features["real"])
                lpips = self.lpips[name]
                metrics[key.replace("kid", "lpips")] = float(torch.cat(lpips).mean()) if lpips else None
        prefix = torch.cat(self.prefix) if self.prefix else swd["real"][:0]
        reference = RealReference(prefix, self.frames, features["real"] if features else None)
        gap = np.concatenate(self.gap) if self.gap else None
        return RealScores(
            metrics=metrics, rows=self.rows, real_frames=reference, clips=self.clips, gap_cond=gap
        )


def kid_fid(name: str, ours: Tensor, theirs: Tensor) -> dict[str, float | None]:
    """``name`` (KID mean), ``name_std`` and the FID key (``kid`` -> ``fid`` in ``name``) of
    Inception features ``ours`` to ``theirs``."""
    kid = kernel_inception_distance(ours, theirs)
    return {
        name: kid["mean"] if kid else None,
        f"{name}_std": kid["std"] if kid else None,
        name.replace("kid", "fid"): frechet_inception_distance(ours, theirs),
    }


@torch.no_grad()
def score_real_clips(
    renderer: Renderer,
    clips,
    *,
    spec: ConditionSpec,
    seed: int = 0,
    progress: bool = False,
    features=None,
    swd_max_frames: int = SWD_MAX_FRAMES,
    reference_frames: int = SWD_MAX_FRAMES,
    keep_rows: int = KEEP_ROWS,
    gap_frames: int = 0,
) -> RealScores:
    """Render every clip of ``clips`` (a list, or ``scoring.open_real_clips``: read one at a time)
    from a fresh context (clip i with seed ``seed + i``) and score it, holding one clip's frames at
    a time (the module docstring says what is kept). ``features``: a ``scoring.FeatureScorer`` for
    the KID/FID/LPIPS keys."""

    num_clips = len(clips)  # known before the first clip: which clips SWD and the gap see
    scorer = _Scorer(num_clips, features=features, swd_max_frames=swd_max_frames,
                     reference_frames=reference_frames, keep_rows=keep_rows, gap_frames=gap_frames)  # fmt: skip
    size = (0, 0)
    for index, clip in enumerate(tqdm(clips, desc="real clips", unit="clip", disable=not progress)):
        generated = to_unit(torch.from_numpy(render_clip(renderer, clip["cond"], seed=seed + index)))
        scorer.add(index, clip, generated, spec)
        size = tuple(generated.shape[-2:])
    if not scorer.clips:
        return RealScores(metrics={}, rows=[], real_frames=RealReference(torch.zeros(0, 3, 1, 1), 0))
    return scorer.result(size)
