"""What the trainer needs from data: training batches by step, held-out clips, a game ride.

Training batches are a pure function of (seed, step, process): the data position of a run is
its step, so a resumed run continues with exactly the batches it would have seen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import torch

from src.conditions.encode import ConditionStats
from src.data.loader import ClipDataset, NotEnoughFramesError, step_batches
from src.data.prepared import read_manifest
from src.eval.scoring import load_game_ride, load_real_clips


class TrainingData:
    def __init__(self, config, *, process_index: int = 0, num_processes: int = 1):
        self.config = config
        self.process_index, self.num_processes = process_index, num_processes
        self.root = Path(config.data.dataset)
        self.manifest = read_manifest(self.root)
        self.stats = ConditionStats.from_dict(self.manifest["stats"])
        width, height = self.manifest["resolution"]
        self.frame_hw = (int(height), int(width))  # (height, width), as tensors are laid out
        self.fps = float(self.manifest["fps"])
        self.spec = config.conditions
        crop = tuple(config.data.crop) if config.data.crop else self.frame_hw
        self._train = ClipDataset(
            self.root,
            split="train",
            clip_frames=config.data.clip_frames,
            crop=crop,
            seed=config.seed,
            frame_skip=tuple(config.data.frame_skip),
            spec=self.spec,
            augment=config.data.augment,
            source_weights=config.data.source_weights,
        )

    def train_batch(self, index: int) -> dict:
        """Batch ``index`` of this process (indices of different processes never overlap)."""
        return self._train.batch_at(self._batch_step(index), self.config.data.batch_size)

    def _batch_step(self, index: int) -> int:
        return index * self.num_processes + self.process_index

    def raw_train_batch(self, index: int) -> dict:
        """``train_batch(index)`` as read, before encoding and augmentation (``ClipDataset.raw_batch_at``)."""
        return self._train.raw_batch_at(self._batch_step(index), self.config.data.batch_size)

    def batches(
        self,
        start_index: int = 0,
        *,
        device: torch.device | str | None = None,
        finish_on_device: bool | None = None,
    ) -> Iterator[dict]:
        """``train_batch(start_index)``, ``train_batch(start_index + 1)``, ... in order, read in
        ``data.num_workers`` DataLoader worker processes (0: in this one).

        On a GPU ``device`` the workers only read (slices of memory-mapped uint8/float16 shards)
        and each batch is encoded and augmented on the GPU as it is taken (batched torch ops,
        ``ClipDataset.finish_batch``); elsewhere (the CPU, or no device) the workers do all of it,
        as before (``finish_on_device`` forces either). The same code either way, so the batches
        are the same; only the noise augmentation's field comes from the GPU's own generator there."""
        workers = self.config.data.num_workers
        if workers and not torch.cuda.is_available():
            # a GPU preset's workers on a machine without a GPU: no more than its cores (torch's
            # DataLoader warns about each worker past that)
            workers = min(workers, os.cpu_count() or 1)
        device = torch.device(device if device is not None else "cpu")
        if finish_on_device is None:
            finish_on_device = device.type != "cpu"
        if not finish_on_device:
            return step_batches(self.train_batch, start_index=start_index, num_workers=workers)
        raw = step_batches(
            self.raw_train_batch, start_index=start_index, num_workers=workers, pin_memory=True
        )
        return (self._train.finish_batch(batch, device) for batch in raw)

    def validation_clips(self, count: int, frames: int) -> list[dict]:
        """``count`` fixed held-out clips of ``frames`` whole frames (``src/eval/scoring.py``:
        ``load_real_clips``): frames, cond, flow_px, forward_flow_px."""
        if count <= 0:
            return []
        frames = frames - frames % 2
        if frames < 2:
            print(f"validation on real clips skipped: {frames} frames make no clip of two frames")
            return []
        try:
            return load_real_clips(
                self.root,
                split="val",
                clip_frames=frames - frames % 2,
                num_clips=count,
                spec=self.spec,
                stats=self.stats,
            )
        except NotEnoughFramesError as error:  # too short a held-out part: say so in the logs, train on
            print(f"validation on real clips skipped: {error}")
            return []

    def game_validation_clip(
        self, frames: int, *, seed: int, cache_dir: Path, level: str | None = None
    ) -> dict | None:
        """A game autopilot ride at the dataset's resolution on ``level``'s world (None: the default
        street), encoded like play does
        (``src/eval/scoring.py``: ``load_game_ride``).

        Rendered once per run (cached under ``cache_dir``); None where no OpenGL context can
        be made (a GPU server without EGL), which the logs then say.
        """
        return load_game_ride(
            cache_dir,
            size=self.frame_hw,
            frames=frames,
            seed=seed,
            fps=self.fps,
            spec=self.spec,
            stats=self.stats,
            level=level,
        )
