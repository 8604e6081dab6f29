"""G-buffer clips on disk: what ``play_game --record_gbuffers DIR`` writes and the data pipeline reads.

A clip is one directory::

    DIR/
      meta.json                 written last; a clip without it is incomplete
      frames_000000.safetensors frames 0 .. k-1 of the clip
      frames_000001.safetensors frames k .. 2k-1, ...

Each shard is a ``safetensors`` file (read with ``safetensors.numpy``, no torch) holding,
for its ``t`` frames:

==============  ===============  =========  ============================================
key             shape            dtype      meaning
==============  ===============  =========  ============================================
``color``       t h w 3          uint8      lit raster view
``depth``       t h w            float32    ``depth_kind`` "metric": axis depth, metres,
                                            sky = ``sky_depth_m`` (1000)
``flow``        t h w 2          float32    ``x_t - x_{t-1}`` in pixels, x right, y down
``normals``     t h w 3          float32    view-space unit normals (OpenGL axes)
``albedo``      t h w 3          uint8      unlit flat colour
``semantic``    t h w            uint8      class id (``semantic_classes`` in meta)
``view``        t 4 4            float64    world -> camera matrix of each frame (optional)
``new_run``     t                uint8      1 where a run (re)started: flow there is zero
==============  ===============  =========  ============================================

``meta.json`` holds ``format`` ("velodream-gbuffer-clip"), ``version`` (1), ``num_frames``,
``fps``, ``resolution`` ([width, height]), ``fov_y_deg``, ``near_m``, ``far_m`` (OpenGL
perspective; ``fx = fy = (height / 2) / tan(fov_y / 2)``, principal point at the image
centre), ``seed``, ``depth_kind``, ``sky_depth_m``, ``semantic_classes``, ``shards`` (file
and frame count, in order) and whatever else the writer adds (level, renderer, ...).

Writes are atomic: the clip is assembled in a temporary folder beside ``DIR`` and renamed
onto it when complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save

from src.common.errors import UserError
from src.common.gbuffer import SEMANTIC_CLASSES, SKY_DEPTH_M, GBuffer, stack_gbuffers
from src.common.io import DiskFullError, atomic_write_json, disk_error, normal_permissions
from src.common.outputs import claim_output_folder, make_staging_folder, swap_into_place, write_output_marker

CLIP_FORMAT = "velodream-gbuffer-clip"
CLIP_VERSION = 1
REQUIRED_META = ("fps", "resolution", "fov_y_deg", "near_m", "far_m", "seed", "depth_kind")
CLIP_KIND = "G-buffer clip"


def is_written_clip(folder: Path) -> bool:
    """Whether ``folder`` is a clip this writer made before output markers existed: its meta.json
    (of this format) and its shards, nothing else."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or meta.get("format") != CLIP_FORMAT:
        return False
    return all(
        child.name == "meta.json"
        or (child.name.startswith("frames_") and child.name.endswith(".safetensors"))
        for child in folder.iterdir()
    )


def claim_clip_folder(directory: str | Path) -> Path:
    """Refuse (one line) a clip folder this writer may not replace (``claim_output_folder``)."""
    return claim_output_folder(
        directory, kind=CLIP_KIND, recognise=is_written_clip, flag="the G-buffer clip folder"
    )


class GBufferClipWriter:
    """Streams frames into a clip directory, one shard per ``frames_per_shard`` frames."""

    def __init__(self, directory: str | Path, meta: dict[str, Any], *, frames_per_shard: int = 64):
        self.directory = Path(directory)
        missing = [key for key in REQUIRED_META if key not in meta]
        if missing:
            raise ValueError(f"G-buffer clip meta lacks {missing}")
        self.meta = dict(meta)
        self.frames_per_shard = frames_per_shard
        claim_clip_folder(self.directory)
        try:
            self.directory.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = make_staging_folder(self.directory)
        except OSError as error:
            if isinstance(disk_error(error, self.directory.parent), DiskFullError):
                raise DiskFullError(self.directory.parent) from None
            raise UserError(
                f"cannot write G-buffer clips to {self.directory}: {error.strerror or error}",
                "Choose a writable folder for --record_gbuffers.",
            ) from None
        self._pending: list[tuple[GBuffer, np.ndarray | None, bool]] = []
        self._shards: list[dict[str, Any]] = []
        self.num_frames = 0
        self.closed = False

    def append(self, frame: GBuffer, *, view: np.ndarray | None = None, new_run: bool = False) -> None:
        self._pending.append((frame, view, new_run))
        self.num_frames += 1
        if len(self._pending) >= self.frames_per_shard:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return

        frames = [p[0] for p in self._pending]
        arrays = {name: np.ascontiguousarray(value) for name, value in stack_gbuffers(frames).items()}
        if all(p[1] is not None for p in self._pending):
            arrays["view"] = np.stack([np.asarray(p[1], np.float64) for p in self._pending])
        arrays["new_run"] = np.array([p[2] for p in self._pending], np.uint8)
        name = f"frames_{len(self._shards):06d}.safetensors"
        try:
            (self._tmp / name).write_bytes(save(arrays))  # bytes first: a full disk raises an OSError
        except OSError as error:
            self.abort()
            raise disk_error(error, self.directory.parent) from None
        self._shards.append({"file": name, "num_frames": len(frames)})
        self._pending = []

    def close(self) -> Path:
        """Write the last shard and meta.json, then move the clip into place."""
        if self.closed:
            return self.directory
        self._flush()
        meta = {
            "format": CLIP_FORMAT,
            "version": CLIP_VERSION,
            "num_frames": self.num_frames,
            "sky_depth_m": SKY_DEPTH_M,
            "semantic_classes": SEMANTIC_CLASSES,
            **self.meta,
            "shards": self._shards,
        }
        meta["resolution"] = list(meta["resolution"])
        try:
            atomic_write_json(self._tmp / "meta.json", meta)
            write_output_marker(self._tmp, kind=CLIP_KIND)
        except (OSError, DiskFullError) as error:
            self.abort()
            if isinstance(error, DiskFullError):
                raise DiskFullError(self.directory.parent) from None
            raise
        claim_clip_folder(self.directory)  # still ours (nothing else appeared there while recording)
        normal_permissions(self._tmp)  # mkdtemp makes things private; a clip is a normal folder
        swap_into_place(self._tmp, self.directory)
        self.closed = True
        return self.directory

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
        self.closed = True


def save_gbuffer_clip(
    directory: str | Path,
    frames: list[GBuffer],
    meta: dict[str, Any],
    *,
    views: list[np.ndarray] | None = None,
    frames_per_shard: int = 64,
) -> Path:
    """Write ``frames`` as one clip (see the module docstring); ``meta`` needs ``REQUIRED_META``."""
    if not frames:
        raise ValueError("no frames to save")
    writer = GBufferClipWriter(directory, meta, frames_per_shard=frames_per_shard)
    try:
        for index, frame in enumerate(frames):
            writer.append(frame, view=None if views is None else views[index])
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def load_gbuffer_clip(directory: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a clip: ``t h w ...`` arrays per key (shards concatenated) and the meta dict."""
    directory = Path(directory)
    meta_path = directory / "meta.json"
    if not meta_path.is_file():
        raise UserError(
            f"not a G-buffer clip: {directory} has no meta.json",
            "Record one with play_game --record_gbuffers DIR, or check the path.",
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != CLIP_FORMAT:
        raise UserError(f"{meta_path} is not a {CLIP_FORMAT} (format={meta.get('format')!r})")
    parts = [load_file(str(directory / shard["file"])) for shard in meta["shards"]]
    arrays = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    return arrays, meta
