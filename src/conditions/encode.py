"""The one code path from G-buffer channels to the model's condition tensor, for both domains.

Per channel (order and widths from ``ConditionSpec``), every output value lies in [-1, 1]:

- ``albedo``  uint8 0..255 -> ``x / 127.5 - 1``.
- ``depth``   metric depth (game, metres) is first turned into inverse depth; relative inverse
  depth (extracted) is used as it is. Monocular depth is only known up to scale, so both are made
  scale-invariant: ``r = inv / median(inv)`` per frame, ``log r`` clipped to ``±depth_log_clip``,
  then mapped linearly from the dataset's [1st, 99th] percentile range onto [-1, 1] and clipped.
- ``normals`` view-space unit normals from depth via ``normals_from_depth`` (relative depth
  ``1 / r``, field of view ``stats.fov_y_deg``), for both domains (``spec.normals_source="depth"``),
  so real and game normals come from the same function; or the G-buffer's own normals
  (``"gbuffer"``, game only).
- ``flow``    pixels of this frame -> fraction of the image width (resolution-independent), a
  signed square root (compresses large motion), divided by the dataset's 99th percentile of
  that value and clipped to [-1, 1].

``ConditionStats`` holds the dataset statistics; ``prepare_data`` computes them over the training
frames and saves them in the manifest, and the game's G-buffers are encoded with the same values.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch

from src.common.errors import UserError
from src.common.gbuffer import GBuffer
from src.common.io import atomic_write_json
from src.conditions.normals import normals_from_depth
from src.conditions.spec import ConditionSpec

DEPTH_KINDS = ("metric", "inverse_relative")


@dataclasses.dataclass
class ConditionStats:
    """Normalisation statistics of a prepared dataset (JSON-serialisable)."""

    depth_log_low: float = -1.5  # 1st percentile of log(inverse depth / per-frame median)
    depth_log_high: float = 1.5  # 99th percentile of the same
    depth_log_clip: float = 4.0  # hard clip of log relative inverse depth before the mapping
    flow_scale: float = 0.1  # 99th percentile of |signed sqrt(flow / width)|
    fov_y_deg: float = 70.0  # vertical field of view used to turn depth into normals
    num_frames: int = 0  # frames the statistics were computed from (0 = defaults)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ConditionStats:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise UserError(
                f"unknown condition statistics {sorted(unknown)}", "The file was written by another version."
            )
        return cls(**values)

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ConditionStats:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x


def relative_log_inverse_depth(
    depth: np.ndarray | torch.Tensor, *, depth_kind: str, clip: float = 4.0
) -> torch.Tensor:
    """``log(inv / median(inv))`` per frame (``... h w``), clipped to ``±clip``."""
    if depth_kind not in DEPTH_KINDS:
        raise ValueError(f"depth_kind must be one of {DEPTH_KINDS}, got {depth_kind!r}")
    d = _tensor(depth).float()
    if d.shape[-1] == 1 and d.ndim >= 3:
        d = d[..., 0]
    inv = 1.0 / d.clamp_min(1e-6) if depth_kind == "metric" else d
    # the median of every other row and column: 4x cheaper, and the same for both domains
    sub = inv[..., ::2, ::2] if inv.shape[-1] * inv.shape[-2] > 4096 else inv
    median = sub.flatten(-2).median(dim=-1).values.clamp_min(1e-12)[..., None, None]
    ratio = (inv / median).clamp_min(math.exp(-clip))
    return ratio.log().clamp(-clip, clip)


def flow_feature(flow: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Signed square root of flow as a fraction of the image width (``... h w 2``)."""
    f = _tensor(flow).float()
    f = f / f.shape[-2]
    return f.sign() * f.abs().sqrt()


def encode(
    channels: dict[str, np.ndarray | torch.Tensor],
    *,
    spec: ConditionSpec,
    stats: ConditionStats,
    depth_kind: str,
    fov_y_deg: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Encode G-buffer channels (each ``... h w [k]``; albedo uint8 0..255, depth ``... h w``,
    flow ``... h w 2`` in pixels, normals ``... h w 3``) into a float32 ``... C h w`` tensor in [-1, 1].

    ``depth_kind`` is ``"metric"`` (game) or ``"inverse_relative"`` (extracted). ``fov_y_deg``
    overrides ``stats.fov_y_deg`` for normals (e.g. the game's true field of view, or a tensor of
    one per batch item: a video's camera from its depth sidecar).
    """
    planes: list[torch.Tensor] = []  # each ... k h w
    log_r = None
    need_depth = "depth" in spec.channels or ("normals" in spec.channels and spec.normals_source == "depth")
    if need_depth:
        if "depth" not in channels:
            raise UserError(
                "encode needs a depth channel", "Pass depth, or drop depth/normals from the spec."
            )
        log_r = relative_log_inverse_depth(
            channels["depth"], depth_kind=depth_kind, clip=stats.depth_log_clip
        )
    for name in spec.channels:
        if name == "albedo":
            albedo = _tensor(channels["albedo"]).float()
            planes.append((albedo / 127.5 - 1.0).movedim(-1, -3))
        elif name == "depth":
            span = max(stats.depth_log_high - stats.depth_log_low, 1e-6)
            mapped = (log_r - stats.depth_log_low) * (2.0 / span) - 1.0
            planes.append(mapped.clamp(-1.0, 1.0).unsqueeze(-3))
        elif name == "normals":
            if spec.normals_source == "depth":
                relative_depth = (-log_r).exp()
                fov = stats.fov_y_deg if fov_y_deg is None else fov_y_deg
                normals = normals_from_depth(relative_depth, fov_y_deg=fov, channel_dim=-3)
            else:
                normals = _tensor(channels["normals"]).float().movedim(-1, -3)
            planes.append(normals.clamp(-1.0, 1.0))
        elif name == "flow":
            feature = flow_feature(channels["flow"]) / max(stats.flow_scale, 1e-6)
            planes.append(feature.clamp(-1.0, 1.0).movedim(-1, -3))
    return torch.cat(planes, dim=-3)  # ... C h w


def encode_gbuffer(
    gbuffer: GBuffer, spec: ConditionSpec, stats: ConditionStats, *, fov_y_deg: float | None = None
) -> torch.Tensor:
    """Encode one G-buffer (game or extracted) into a ``C h w`` float32 tensor."""
    return encode(
        gbuffer.arrays(), spec=spec, stats=stats, depth_kind=gbuffer.depth_kind, fov_y_deg=fov_y_deg
    )


class StatsAccumulator:
    """Collects subsampled per-pixel features over a dataset and turns them into ``ConditionStats``."""

    def __init__(
        self, *, fov_y_deg: float, depth_log_clip: float = 4.0, pixels_per_frame: int = 512, seed: int = 0
    ):
        self.fov_y_deg, self.depth_log_clip = fov_y_deg, depth_log_clip
        self.pixels_per_frame = pixels_per_frame
        self.rng = np.random.default_rng(seed)
        self.depth_samples: list[np.ndarray] = []
        self.flow_samples: list[np.ndarray] = []
        self.num_frames = 0

    def add(self, *, depth: np.ndarray, flow: np.ndarray, depth_kind: str) -> None:
        """Add ``t h w`` depth and ``t h w 2`` flow."""
        log_r = relative_log_inverse_depth(depth, depth_kind=depth_kind, clip=self.depth_log_clip).numpy()
        feature = flow_feature(flow).abs().numpy()
        t = len(log_r)
        picks = self.rng.integers(0, log_r[0].size, size=(t, self.pixels_per_frame))
        self.depth_samples.append(np.take_along_axis(log_r.reshape(t, -1), picks, axis=1).ravel())
        self.flow_samples.append(np.take_along_axis(feature.reshape(t, -1), picks, axis=1).ravel())
        self.num_frames += t

    def stats(self) -> ConditionStats:
        if not self.num_frames:
            return ConditionStats(fov_y_deg=self.fov_y_deg, depth_log_clip=self.depth_log_clip)
        depth = np.concatenate(self.depth_samples)
        flow = np.concatenate(self.flow_samples)
        low, high = np.percentile(depth, [1, 99])
        if high - low < 1e-3:
            low, high = low - 0.5, high + 0.5
        return ConditionStats(
            depth_log_low=round(float(low), 6),
            depth_log_high=round(float(high), 6),
            depth_log_clip=self.depth_log_clip,
            flow_scale=round(max(float(np.percentile(flow, 99)), 1e-3), 6),
            fov_y_deg=self.fov_y_deg,
            num_frames=self.num_frames,
        )


def downsample_encoded(cond: torch.Tensor, factor: int) -> torch.Tensor:
    """Encoded conditions ``... C H W`` -> ``... C H/factor W/factor`` by area averaging: what a
    renderer that upscales its output (the student's ``upscale``) takes when it is handed
    conditions at its output size. Every encoded plane is resolution-independent (flow is a
    fraction of the width), so averaging keeps its meaning."""
    if factor == 1:
        return cond
    *lead, channels, height, width = cond.shape
    if height % factor or width % factor:  # avg_pool2d drops the remainder rows and columns
        pooled = torch.nn.functional.avg_pool2d(cond.reshape(-1, channels, height, width), factor)
        return pooled.reshape(*lead, *pooled.shape[-3:])
    # the same sums in the same order as avg_pool2d (so the same bits), a few times faster on a CPU
    blocks = cond.reshape(*lead, channels, height // factor, factor, width // factor, factor)
    total = blocks[..., 0, :, 0]
    for i in range(factor):
        for j in range(factor):
            if i or j:
                total = total + blocks[..., i, :, j]
    return total / (factor * factor)
