"""What the trainer needs from data: training batches by step, held-out clips, a game ride.

Training batches are a pure function of (seed, step, process): the data position of a run is
its step, so a resumed run continues with exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from src.conditions.encode import ConditionStats
from src.data.loader import ClipDataset, NotEnoughFramesError, step_batches
from src.data.prepared import read_manifest


class TrainingData:
    def __init__(self, config, *, process_index: int = 0, num_processes: int = 1):
        self.config = config
        self.process_index, self.num_processes = process_index, num_processes
        self.root = Path(config.data.dataset)
        self.manifest = read_manifest(self.root)
        self.stats = ConditionStats.from_dict(self.manifest["stats"])
        width, height = self.manifest["resolution"]
        self.frame_size = (int(height), int(width))
        self.fps = float(self.manifest["fps"])
        self.spec = config.conditions
        crop = tuple(config.data.crop) if config.data.crop else self.frame_size
        self._train = ClipDataset(
            self.root,
            split="train",
            clip_frames=config.data.clip_frames,
            crop=crop,
            seed=config.seed,
            frame_skip=tuple(config.data.frame_skip),
            spec=self.spec,
            augment=config.data.augment,
        )

    def train_batch(self, index: int) -> dict:
        """Batch ``index`` of this process (indices of different processes never overlap)."""
        return self._train.batch_at(
            index * self.num_processes + self.process_index, self.config.data.batch_size
        )

    def batches(self, start_index: int = 0) -> Iterator[dict]:
        """``train_batch(start_index)``, ``train_batch(start_index + 1)``, ... in order, computed in
        ``data.num_workers`` DataLoader worker processes (0: in this one)."""
        return step_batches(self.train_batch, start_index=start_index, num_workers=self.config.data.num_workers)

    def validation_clips(self, count: int, frames: int) -> list[dict]:
        """``count`` fixed held-out clips of ``frames`` whole frames: frames, cond, flow_px."""
        if count <= 0:
            return []
        frames = frames - frames % 2
        if frames < 2:
            print(f"validation on real clips skipped: {frames} frames make no clip of two frames")
            return []
        try:
            dataset = ClipDataset(
                self.root,
                split="val",
                clip_frames=frames,
                crop=self.frame_size,
                seed=0,
                spec=self.spec,
                num_val_clips=count,
            )
        except NotEnoughFramesError as error:  # too short a held-out part: say so in the logs, train on
            print(f"validation on real clips skipped: {error}")
            return []
        clips = []
        for index in range(count):
            raw = dataset.raw_clip(index)  # read once: the item and the reference flow both come from it
            item = dataset.clip_from_raw(raw, index)
            item["flow_px"] = torch.from_numpy(raw["flow"].astype(np.float32))
            clips.append(item)
        return clips

    def game_validation_clip(self, frames: int, *, seed: int, cache_dir: Path) -> dict | None:
        """A game autopilot ride at the dataset's resolution, encoded like play does.

        Rendered once per run (cached under ``cache_dir``); None where no OpenGL context can
        be made (a GPU server without EGL), which the logs then say.
        """
        import moderngl

        from src.common.gbuffer_io import load_gbuffer_clip
        from src.conditions.encode import encode
        from src.game.recording import record_autopilot_clip
        from src.game.renderer import NoOpenGLContextError

        if frames <= 0:
            print(f"game validation ride skipped: {frames} frames asked for")
            return None
        clip_dir = cache_dir / f"game_seed{seed}_{frames}f"
        height, width = self.frame_size
        try:
            record_autopilot_clip(clip_dir, width=width, height=height, frames=frames, seed=seed,
                                  fps=max(1, round(self.fps)))
        except (NoOpenGLContextError, moderngl.Error) as error:  # a GPU server without EGL, say
            print(f"game validation ride skipped: {type(error).__name__}: {error}")
            return None
        arrays, meta = load_gbuffer_clip(clip_dir)
        cond = encode(
            {k: arrays[k] for k in ("albedo", "depth", "flow", "normals") if k in arrays},
            spec=self.spec,
            stats=self.stats,
            depth_kind=meta.get("depth_kind", "metric"),
            fov_y_deg=meta.get("fov_y_deg"),
        )
        raster = torch.from_numpy(arrays["color"]).float().div(127.5).sub(1).permute(0, 3, 1, 2)
        return {
            "cond": cond,
            "raster": raster,
            "flow_px": torch.from_numpy(arrays["flow"].astype(np.float32)),
        }
