"""The recordings of a ride: an mp4 per recorded view and the exact G-buffers as a clip folder."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from src.common.gbuffer import GBuffer
from src.common.gbuffer_io import GBufferClipWriter
from src.common.video import Mp4Writer
from src.game.views import FrameInfo, view_image


class RideOutputs:
    """The ride's recordings: one mp4 per recorded view (opened at the first frame, when the view's
    size is known) and the G-buffer clip; ``close`` finishes them, ``abort`` drops what is left."""

    def __init__(self, recordings: dict[str, str], *, fps: int, gbuffer_clip: str | None):
        """``recordings``: mp4 path -> view name; ``gbuffer_clip``: the clip folder, or None."""
        self.recordings = recordings
        self.fps = fps
        self.gbuffer_clip = gbuffer_clip
        self.writers: dict = {}  # path -> Mp4Writer
        self.clip = None

    def open_clip(self, clip_meta: Callable[[], dict]) -> None:
        """Start the G-buffer clip, when one is asked for, described by ``clip_meta()`` (the
        session's; only called then)."""
        if self.gbuffer_clip is not None:
            self.clip = GBufferClipWriter(self.gbuffer_clip, clip_meta())

    def write(self, gbuffer: GBuffer, info: FrameInfo, extra: dict[str, np.ndarray]) -> None:
        for path, view_name in self.recordings.items():
            image = view_image(view_name, gbuffer, extra)
            if path not in self.writers:
                self.writers[path] = Mp4Writer(
                    path, fps=self.fps, width=image.shape[1], height=image.shape[0]
                )
            self.writers[path].write(image)
        if self.clip is not None:
            self.clip.append(gbuffer, view=info.view_matrix, new_run=info.new_run)

    def close(self) -> None:
        while self.writers:
            self.writers.pop(next(iter(self.writers))).close()
        if self.clip is not None:
            self.clip.close()
            self.clip = None

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()
        if self.clip is not None:
            self.clip.abort()
