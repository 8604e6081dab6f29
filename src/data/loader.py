"""Training and validation clips from a prepared dataset.

Every clip is a pure function of ``(seed, index)``: which video segment, where it starts, the
frame skip, the crop and the augmentation are all drawn from ``np.random.default_rng([seed, index])``.
Training batch ``step`` holds indices ``step * batch_size + i`` (``ClipDataset.batch_at``), so the
data position of a run is just its step; ``step_batches(batch_at, start_index=step)`` walks the
batches from there, in this process or in DataLoader workers, and resumes exactly where a run
stopped.

Reading and finishing are two halves: ``raw_batch_at`` (a loader worker's job) copies each clip
once from the memory-mapped shards, uint8/float16 as stored, and draws its augmentations;
``finish_batch`` (the training device's job, or the worker's on a CPU) mirrors, colour-jitters,
encodes and augments the whole batch as torch ops. ``batch_at`` is both.

A batch is a dict: ``frames`` b t 3 h w float32 in [-1, 1]; ``cond`` b t C h w float32 (encoded
with the dataset's statistics, or a renderer package's when ``stats`` is given; augmented for
``split="train"`` only); ``index`` b int64.

Splits: ``train`` and ``val`` (the last part of each video), or ``all`` (every frame of each
video). Training clips are random (a clip's video drawn in proportion to its frames, or to its
weight in ``source_weights``: ``src/data/weights.py``); the clips of ``val``/``all`` (or of any split with
``fixed_clips=True``) are fixed: evenly spread, centred, unaugmented, the same every time.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from src.common.errors import UserError
from src.common.frames import frames_from_uint8
from src.conditions.augment import AugmentConfig, ConditionAugmenter
from src.conditions.encode import ConditionStats, encode
from src.conditions.joint_augment import (
    JointAugmentation,
    apply_joint_augmentation,
    draw_joint_augmentation,
    flip_and_jitter_batch,
)
from src.conditions.spec import ConditionSpec
from src.data import prepared
from src.data.weights import segment_probabilities

STORED_TORCH_DTYPES = {
    "frames": torch.uint8,
    "depth": torch.float16,
    "flow": torch.float16,
    "albedo": torch.uint8,
}


class NotEnoughFramesError(UserError):
    """No segment of the split is long enough for one clip (e.g. a short held-out part)."""


def _as_crop(crop: int | tuple[int, int]) -> tuple[int, int]:
    return (crop, crop) if isinstance(crop, int) else (int(crop[0]), int(crop[1]))


class ClipDataset(Dataset):
    """Clips of one split. ``len`` is the number of fixed clips; random training indices are unbounded."""

    def __init__(
        self,
        prepared_dir: str | Path,
        *,
        split: str,
        clip_frames: int,
        crop: int | tuple[int, int],
        seed: int,
        frame_skip: tuple[int, int] = (1, 1),
        spec: ConditionSpec | None = None,
        augment: AugmentConfig | None = None,
        num_val_clips: int = 64,
        stats: ConditionStats | None = None,
        fixed_clips: bool | None = None,
        source_weights: dict[str, float] | None = None,
    ):
        self.root = Path(prepared_dir)
        self.manifest = prepared.read_manifest(self.root)
        self.split, self.seed = split, seed
        # fixed clips: evenly spread, whole-length, centred, never augmented (validation, evaluate)
        self.fixed_clips = split != "train" if fixed_clips is None else fixed_clips
        if clip_frames < 2 or clip_frames % 2:
            raise UserError(f"clip_frames must be a positive multiple of 2, got {clip_frames}")
        self.clip_frames = clip_frames
        self.crop_h, self.crop_w = _as_crop(crop)
        width, height = self.manifest["resolution"]
        if self.crop_h > height or self.crop_w > width:
            raise UserError(
                f"crop {self.crop_w}x{self.crop_h} is larger than the prepared frames ({width}x{height})",
                "Use a smaller crop, or prepare the data at a higher resolution.",
            )
        self.skip_range = (1, 1) if self.fixed_clips else (int(frame_skip[0]), int(frame_skip[1]))
        if not 1 <= self.skip_range[0] <= self.skip_range[1]:
            raise UserError(
                f"invalid frame skip range {frame_skip}", "Use 1 <= frame_skip_min <= frame_skip_max."
            )
        self.spec = spec or ConditionSpec()
        # a renderer package's statistics when given (evaluate encodes as play does), else the dataset's
        self.stats = stats or ConditionStats.from_dict(self.manifest["stats"])
        augmented = augment is not None and not self.fixed_clips
        self.augmenter = ConditionAugmenter(augment, self.spec) if augmented else None
        self.joint_augment = augment if augmented else None
        self.segments = prepared.segments(self.manifest, split)
        span = (clip_frames - 1) * self.skip_range[0] + 1
        self.segments = [s for s in self.segments if s["num_frames"] >= span]
        if not self.segments:
            raise NotEnoughFramesError(
                f"no {split} segment of {self.root} has {span} frames for a {clip_frames}-frame clip",
                "Use shorter clips, or prepare longer videos / a higher fps.",
            )
        # per video: its frames, or its weight in source_weights (src/data/weights.py)
        self.weights = segment_probabilities(self.segments, self.manifest["videos"], source_weights)
        # a video with a depth sidecar knows its camera: its normals use its own field of view
        self.fov_by_video = {
            v["id"]: (v.get("sidecar") or {}).get("camera_fov_y_deg") for v in self.manifest["videos"]
        }
        self.num_val_clips = num_val_clips
        self.reader = prepared.ShardReader(self.root)

    def __len__(self) -> int:
        return self.num_val_clips if self.fixed_clips else 2**62

    def _choose(self, index: int) -> tuple[np.random.Generator, dict, list[int], int, int]:
        rng = np.random.default_rng([self.seed, index, 0 if self.split == "train" else 1])
        width, height = self.manifest["resolution"]
        if self.fixed_clips:  # evenly spread, centred crops: the same clips every time
            positions = [
                (seg, start)
                for seg in self.segments
                for start in range(seg["num_frames"] - self.clip_frames + 1)
            ]
            seg, start = positions[
                round(index * (len(positions) - 1) / max(1, self.num_val_clips - 1)) % len(positions)
            ]
            return (
                rng,
                seg,
                list(range(start, start + self.clip_frames)),
                (height - self.crop_h) // 2,
                (width - self.crop_w) // 2,
            )
        seg = self.segments[rng.choice(len(self.segments), p=self.weights)]
        max_skip = min(self.skip_range[1], (seg["num_frames"] - 1) // (self.clip_frames - 1))
        skip = int(rng.integers(self.skip_range[0], max(self.skip_range[0], max_skip) + 1))
        span = (self.clip_frames - 1) * skip + 1
        start = int(rng.integers(0, seg["num_frames"] - span + 1))
        top = int(rng.integers(0, height - self.crop_h + 1))
        left = int(rng.integers(0, width - self.crop_w + 1))
        return rng, seg, list(range(start, start + span, skip)), top, left

    def clip_source(self, index: int) -> tuple[str, list[int]]:
        """Which video clip ``index`` comes from and its frame indices in that video's segment."""
        _, segment, frame_ids, _, _ = self._choose(index)
        return segment["video"], frame_ids

    def joint_augmentation(self, index: int) -> JointAugmentation:
        """Clip ``index``'s joint augmentation (training only), from its own random stream
        ``[seed, index, 2]``: turning it on leaves every other draw of the clip unchanged."""
        if self.joint_augment is None:
            return JointAugmentation()
        width, height = self.manifest["resolution"]
        return draw_joint_augmentation(
            self.joint_augment,
            np.random.default_rng([self.seed, index, 2]),
            frame_hw=(height, width),
            crop_size=(self.crop_h, self.crop_w),
        )

    def raw_clip(self, index: int) -> dict:
        """The raw (not encoded) channels of clip ``index``, cropped, with its augmentation draws.

        Numpy arrays as stored (``frames``/``albedo`` t h w 3 uint8, ``depth`` t h w float16,
        ``flow`` t h w 2 float16, or float32 summed over a frame skip), each one slice of the
        memory-mapped shards copied once; ``joint`` (``JointAugmentation``) and ``augment``
        (``ConditionAugmentation``, or None unaugmented) for ``finish_batch``. A random-scale crop
        reads its region and resizes it here (every channel then float32, colours on the 0..255
        scale); the mirror and the colour jitter wait for ``finish_batch``.
        """
        plan = self._plan(index)
        return self._read(plan) | {key: plan[key] for key in ("joint", "augment", "fov_y_deg")}

    def _plan(self, index: int) -> dict:
        """What clip ``index`` reads (segment, frames, window) and its augmentation draws."""
        rng, seg, frame_ids, top, left = self._choose(index)
        joint = self.joint_augmentation(index)
        region_h, region_w = self.crop_h, self.crop_w
        if joint.region is not None:  # a random-scale crop reads another region, resized below
            top, left, region_h, region_w = joint.region
        return {
            "segment": seg,
            "frame_ids": frame_ids,
            "skip": (frame_ids[1] - frame_ids[0]) if len(frame_ids) > 1 else 1,
            "window": (slice(top, top + region_h), slice(left, left + region_w)),
            "joint": joint,
            "augment": self.augmenter.draw(rng) if self.augmenter is not None else None,
            "fov_y_deg": self.fov_by_video.get(seg["video"]),
        }

    def _read(self, plan: dict, out: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """A planned clip's four arrays, written into ``out`` (``t h w [k]`` arrays) when given."""
        seg, frame_ids, skip, window = plan["segment"], plan["frame_ids"], plan["skip"], plan["window"]
        first, stop = frame_ids[0], frame_ids[-1] + 1
        region = plan["joint"].region
        into = out if out is not None and region is None else {}
        arrays = {
            key: prepared.read_segment_range(
                self.reader, seg, key, first, stop, skip, window, out=into.get(key)
            )
            for key in prepared.SHARD_KEYS
            if key != "flow" or skip == 1
        }
        # flow over a skip: the sum of the per-frame flows at each pixel (first order: it ignores
        # that the pixel moves between steps). Against DIS run directly over the skip, on bikes
        # and vtest at 96 px, composing the flows by warping was only ~5 % closer than the sum.
        if skip > 1:
            low = max(0, first - skip + 1)
            flows = prepared.read_segment_range(self.reader, seg, "flow", low, stop, 1, window)
            ids = np.asarray(frame_ids)
            summed = into["flow"] if "flow" in into else np.empty((len(ids), *flows.shape[1:]), np.float32)
            summed[...] = 0.0
            for back in range(skip - 1, -1, -1):  # oldest first, the order a sum over time takes
                source = ids - back
                valid = source >= 0
                summed[valid] += flows[source[valid] - low]
            arrays["flow"] = summed
        if region is not None:
            arrays = apply_joint_augmentation(
                arrays, JointAugmentation(region=region), out_size=(self.crop_h, self.crop_w)
            )
            if out is not None:
                for key in prepared.SHARD_KEYS:
                    out[key][...] = arrays[key]
        return out if out is not None else arrays

    def __getitem__(self, index: int) -> dict:
        return self.clip_from_raw(self.raw_clip(index), index)

    def clip_from_raw(self, raw: dict, index: int) -> dict:
        """The training/validation item for a clip already read with ``raw_clip(index)``."""
        batch = self.finish_batch(self._stack([raw], [index]))
        return {key: value[0] for key, value in batch.items()}

    @staticmethod
    def _stack(raws: list[dict], indices: list[int]) -> dict:
        arrays = {key: torch.from_numpy(np.stack([raw[key] for raw in raws])) for key in prepared.SHARD_KEYS}
        return arrays | {
            "index": torch.tensor(indices, dtype=torch.int64),
            "joint": [raw["joint"] for raw in raws],
            "augment": [raw["augment"] for raw in raws],
            "fov_y_deg": [raw["fov_y_deg"] for raw in raws],
        }

    def raw_batch_at(self, step: int, batch_size: int, *, shared_memory: bool | None = None) -> dict:
        """Training batch ``step`` as read, before encoding: the loader's whole job.

        ``frames``/``albedo`` b t h w 3 uint8, ``depth`` b t h w float16, ``flow`` b t h w 2
        float16 (float32 where a clip sums flows over a frame skip; every array float32 where a
        clip was resized by a random-scale crop), ``index`` b int64, and each clip's augmentation
        draws (``joint``, ``augment``: lists). ``finish_batch`` turns it into the batch
        ``batch_at`` returns, on any device. Each clip is copied once, from the memory-mapped
        shards into the batch; in a DataLoader worker (or with ``shared_memory=True``) the batch
        is allocated in shared memory, so handing it to the training process copies nothing more.
        """
        indices = [step * batch_size + i for i in range(batch_size)]
        plans = [self._plan(index) for index in indices]
        resized = any(plan["joint"].region is not None for plan in plans)
        dtypes = {key: torch.float32 if resized else STORED_TORCH_DTYPES[key] for key in prepared.SHARD_KEYS}
        if any(plan["skip"] > 1 for plan in plans):
            dtypes["flow"] = torch.float32
        t, h, w = self.clip_frames, self.crop_h, self.crop_w
        shapes = {"frames": (t, h, w, 3), "albedo": (t, h, w, 3), "depth": (t, h, w), "flow": (t, h, w, 2)}
        if shared_memory is None:
            shared_memory = torch.utils.data.get_worker_info() is not None
        batch = {key: _empty((batch_size, *shapes[key]), dtypes[key], shared=shared_memory) for key in shapes}
        for i, plan in enumerate(plans):
            self._read(plan, {key: batch[key][i].numpy() for key in prepared.SHARD_KEYS})
        return batch | {
            "index": torch.tensor(indices, dtype=torch.int64),
            "joint": [plan["joint"] for plan in plans],
            "augment": [plan["augment"] for plan in plans],
            "fov_y_deg": [plan["fov_y_deg"] for plan in plans],
        }

    def finish_batch(self, raw: dict, device: torch.device | str | None = None) -> dict:
        """``raw_batch_at``'s batch -> the model's: the mirror and colour jitter, ``encode`` and the
        condition augmentations, batched torch ops on ``device`` (default: where ``raw`` is).
        A pure function of ``raw``: on a GPU inside the training step or on the CPU in a loader
        worker it is the same code (only the noise field depends on the device's generator)."""
        channels = {key: raw[key].to(device, non_blocking=True) for key in prepared.SHARD_KEYS}
        channels = flip_and_jitter_batch(channels, raw["joint"])
        frames = frames_from_uint8(channels.pop("frames"))  # b t 3 h w
        cond = encode(
            channels,
            spec=self.spec,
            stats=self.stats,
            depth_kind=self.manifest["depth_kind"],
            fov_y_deg=self._fov_of_clips(raw.get("fov_y_deg")),
        )  # b t C h w
        if self.augmenter is not None:
            cond = self.augmenter.apply(cond, raw["augment"])
        return {"frames": frames.contiguous(), "cond": cond.contiguous(), "index": raw["index"]}

    def _fov_of_clips(self, fovs: list[float | None] | None) -> torch.Tensor | None:
        """Each clip's field of view for its normals (``b``): its camera's where its video has a
        depth sidecar that names it, else the statistics' (None when no clip has its own)."""
        if not fovs or all(f is None for f in fovs):
            return None
        return torch.tensor([self.stats.fov_y_deg if f is None else f for f in fovs], dtype=torch.float32)

    def batch_at(self, step: int, batch_size: int) -> dict:
        """Training batch ``step``: clips ``step * batch_size ...`` read, encoded and augmented
        (deterministic), on the CPU."""
        return self.finish_batch(self.raw_batch_at(step, batch_size, shared_memory=False))


def _empty(shape: tuple[int, ...], dtype: torch.dtype, *, shared: bool) -> torch.Tensor:
    """An uninitialised tensor, in shared memory when ``shared`` (allocated there, as torch's own
    collate does in workers: ``share_memory_`` would copy it there after the fact)."""
    if not shared:
        return torch.empty(shape, dtype=dtype)
    numel = int(np.prod(shape))
    storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(numel)
    return torch.empty(0, dtype=dtype).new(storage).view(shape)


class _BatchByIndex(Dataset):
    """Map-style view of a step-indexed batch function: item ``i`` is ``batch_at(i)``."""

    def __init__(self, batch_at: Callable[[int], dict]):
        self.batch_at = batch_at

    def __len__(self) -> int:
        return sys.maxsize  # unbounded: training stops on its own step count

    def __getitem__(self, index: int) -> dict:
        return self.batch_at(index)


def step_batches(
    batch_at: Callable[[int], dict], *, start_index: int = 0, num_workers: int = 0, pin_memory: bool = False
) -> Iterator[dict]:
    """``batch_at(start_index)``, ``batch_at(start_index + 1)``, ... without end, in this order.

    ``batch_at`` must be a pure function of its index (``ClipDataset.batch_at`` is), so where the
    batches are computed does not change them: with ``num_workers`` 0 in this process, else in a
    torch DataLoader's worker processes that read ahead while the model trains (each item is a
    whole batch: ``batch_size=None``; the sampler walks the indices from ``start_index``, so a
    resumed run gets exactly the batches it would have seen). Nothing is computed before the
    first ``next``. ``pin_memory``: the workers' batches land in page-locked memory (for a GPU).
    """
    if num_workers <= 0:
        yield from map(batch_at, itertools.count(start_index))
        return
    loader = DataLoader(
        _BatchByIndex(batch_at),
        batch_size=None,
        sampler=range(start_index, sys.maxsize),
        num_workers=num_workers,
        pin_memory=pin_memory and torch.cuda.is_available(),
    )
    yield from loader  # the workers start at the first batch asked for, not before
