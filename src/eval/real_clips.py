"""The real clips of a prepared dataset that ``evaluate`` and validation score, read one at a time
(``scoring.open_real_clips`` chooses them; ``scoring.load_real_clips`` reads them all at once)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from src.conditions.flow import DISFlow
from src.data.loader import ClipDataset


def forward_flow(frames: np.ndarray, *, dis_preset: str = "medium") -> Tensor:
    """``t h w 2`` forward flow of ``t h w 3`` uint8 frames: entry t is the motion
    ``x_t - x_{t-1}`` at pixels of frame t-1 (entry 0 zero), by the same DIS extractor run the
    other way; what ``warp_error_mask`` needs for its forward-backward occlusion check."""
    dis = DISFlow(dis_preset)
    out = np.zeros(frames.shape[:3] + (2,), np.float32)
    for t in range(1, len(frames)):
        out[t] = -dis(frames[t], frames[t - 1])  # at pixels of t-1: x_{t-1} - x_t, negated
    return torch.from_numpy(out)


class RealClips:
    """``len(clips)`` fixed clips of ``clips_set`` (a ``ClipDataset`` with ``fixed_clips``), each read
    when the iteration reaches it: ``frames`` t 3 h w in [-1, 1], ``cond`` t C h w, ``flow_px``
    t h w 2 (the extracted flow), ``forward_flow_px`` t h w 2 (with ``with_forward_flow``),
    ``video`` (its source's id) and ``start`` (its first frame in the split's segment)."""

    def __init__(self, clips_set: ClipDataset, count: int, *, dis_preset: str, with_forward_flow: bool):
        self.clips_set, self.count = clips_set, count
        self.dis_preset, self.with_forward_flow = dis_preset, with_forward_flow

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[dict]:
        for index in range(self.count):
            yield self.clip(index)

    def clip(self, index: int) -> dict:
        raw = self.clips_set.raw_clip(index)  # read once: the item and the flows come from it
        item = self.clips_set.clip_from_raw(raw, index)
        video, frame_ids = self.clips_set.clip_source(index)
        clip = {
            "frames": item["frames"],
            "cond": item["cond"],
            "flow_px": torch.from_numpy(raw["flow"].astype(np.float32)),
            "video": video,
            "start": frame_ids[0],
        }
        if self.with_forward_flow:
            clip["forward_flow_px"] = forward_flow(raw["frames"], dis_preset=self.dis_preset)
        return clip
