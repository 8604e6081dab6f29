"""The neural view: game G-buffers -> the same ``encode`` as training -> a renderer -> RGB frames.

``NeuralRenderer`` is synchronous: push one G-buffer per game frame; every
``renderer.frames_per_step`` pushes it renders that many frames (the DiT renders framelets of
2 consecutive frames, so its output lags the game by up to one framelet). A push is two halves:
``collect`` (encode, and the step's inputs once its frames are in) and ``render`` (the model).
The renderer is anything behind ``src/runtime/renderer.py``'s interface (DiT, flat-colour
baseline, ...). ``NeuralWorker`` runs the model in its own thread for the interactive loop: the
game never waits for it, the window shows the newest neural frame, and the HUD reads the
worker's FPS and latency.
``PipelinedRenderer`` runs it one frame behind the game in one worker thread, in order and
without dropping a frame: the game makes frame N+1 while the model renders frame N.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from src.common.frames import frames_to_uint8
from src.common.gbuffer import GBuffer
from src.conditions.align import encode_game_frame, make_aligner
from src.runtime.package import RendererPackage
from src.runtime.renderer import Renderer


@dataclass
class StageTimes:
    """Rolling per-stage milliseconds (the last 64 framelets)."""

    encode_ms: deque = field(default_factory=lambda: deque(maxlen=64))
    model_ms: deque = field(default_factory=lambda: deque(maxlen=64))

    def summary(self) -> dict[str, float]:
        return {
            "encode_ms": float(np.mean(self.encode_ms)) if self.encode_ms else 0.0,
            "model_ms": float(np.mean(self.model_ms)) if self.model_ms else 0.0,
        }


class NeuralRenderer:
    def __init__(self, package: RendererPackage, renderer: Renderer, *, fov_y_deg: float | None = None):
        self.package = package
        self.renderer = renderer
        self.fov_y_deg = fov_y_deg
        self.frames_per_step = renderer.frames_per_step
        self.times = StageTimes()
        self._pending: list[torch.Tensor] = []
        # the package's game-side condition transforms (src/conditions/align.py), if it asks for any
        self._aligner = make_aligner(package.spec)

    def reset(self) -> None:
        """A new ride: drop the context, any half-collected framelet and the aligner's state."""
        self.renderer.reset()
        self.reset_inputs()

    def reset_inputs(self) -> None:
        """``collect``'s half of ``reset``: the half-collected framelet and the aligner's state."""
        self._pending.clear()
        if self._aligner is not None:
            self._aligner.reset()

    def encode(self, gbuffer: GBuffer) -> torch.Tensor:
        return encode_game_frame(
            gbuffer, self._aligner, spec=self.package.spec, stats=self.package.stats, fov_y_deg=self.fov_y_deg
        )

    def push(self, gbuffer: GBuffer) -> np.ndarray | None:
        """Add one frame's G-buffer; returns ``f h w 3`` uint8 frames when a step's frames are in."""
        inputs = self.collect(gbuffer)
        return None if inputs is None else self.render(inputs)

    def collect(self, gbuffer: GBuffer) -> tuple | None:
        """The caller's half of ``push``: encode the frame; when a step's frames are in, the
        renderer's inputs for it (``Renderer.prepare``), else None. Timed as ``encode_ms``."""
        start = time.perf_counter()
        self._pending.append(self.encode(gbuffer))
        inputs = None
        if len(self._pending) == self.frames_per_step:
            inputs = self.renderer.prepare(torch.stack(self._pending).numpy())  # f C h w
            self._pending.clear()
        self.times.encode_ms.append((time.perf_counter() - start) * 1e3)
        return inputs

    def render(self, inputs: tuple) -> np.ndarray:
        """The model's half of ``push``: one step on ``collect``'s inputs, ``f h w 3`` uint8 frames."""
        start = time.perf_counter()
        frames = self.renderer.step_prepared(*inputs)
        self.times.model_ms.append((time.perf_counter() - start) * 1e3)
        return frames_to_uint8(frames)


class NeuralWorker:
    """Runs a NeuralRenderer's model in a background thread, always on the newest G-buffers.

    ``submit(gbuffer, ride_id)`` never waits for the model: it encodes the G-buffer in the
    caller's thread (``NeuralRenderer.collect``, so the game-side state stays in order) and hands a
    full step's inputs to the worker, dropping a step still waiting there. When the game restarts,
    a new ``ride_id`` drops the half-collected framelet at once and makes the worker reset the
    model's context before its next step. ``latest()`` returns the newest frame, its latency
    (seconds from the submission of its step's last G-buffer to the frame being ready) and the
    neural frame rate.
    """

    def __init__(self, renderer: NeuralRenderer):
        self.renderer = renderer
        # one step at most: a model that falls behind skips ahead instead of lagging
        self._inbox: queue.Queue = queue.Queue(maxsize=1)
        self._lock = threading.Lock()
        self._latest: np.ndarray | None = None
        self._latency_s = 0.0
        self._frame_times: deque = deque(maxlen=32)
        self._stop = threading.Event()
        self._ride_id: int | None = None  # the worker's
        self._submitted_ride_id: int | None = None  # the caller's
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="neural-renderer", daemon=True)
        self._thread.start()

    def submit(self, gbuffer: GBuffer, ride_id: int) -> None:
        submitted = time.perf_counter()
        if ride_id != self._submitted_ride_id:
            self.renderer.reset_inputs()
            self._submitted_ride_id = ride_id
        inputs = self.renderer.collect(gbuffer)
        if inputs is None:
            return
        item = (inputs, ride_id, submitted)
        try:
            self._inbox.put_nowait(item)
        except queue.Full:  # the model is behind: drop the waiting step so it works on fresh frames
            try:
                self._inbox.get_nowait()
            except queue.Empty:
                pass
            self._inbox.put_nowait(item)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    inputs, ride_id, submitted = self._inbox.get(timeout=0.05)
                except queue.Empty:
                    continue
                if ride_id != self._ride_id:
                    self.renderer.renderer.reset()  # the model's context; collect's inputs were reset by submit
                    self._ride_id = ride_id
                frames = self.renderer.render(inputs)
                now = time.perf_counter()
                with self._lock:
                    self._latest = frames[-1]
                    self._latency_s = now - submitted
                    self._frame_times.extend([now] * len(frames))
        except BaseException as error:  # surfaced by the play loop
            self.error = error

    def latest(self) -> tuple[np.ndarray | None, float, float]:
        """(newest frame or None, latency in seconds, neural frames per second)."""
        with self._lock:
            times = list(self._frame_times)
            fps = (
                (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
            )
            return self._latest, self._latency_s, fps

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class PipelinedRenderer:
    """A ``NeuralRenderer`` run one frame behind the game, in one worker thread.

    ``push(gbuffer, tag)`` encodes the G-buffer and prepares the step's inputs in the caller's
    thread (``NeuralRenderer.collect``: stateful game-side transforms stay in order), takes what
    the worker made of the previous push (waiting for it where it is not done), hands this
    frame's inputs to the worker, and returns the previous push's frames (or None) with that
    push's ``tag``. So while the caller displays frame N and renders the G-buffer of frame N+1,
    the worker renders frame N: on two cores the frame costs the longer of the two sides, not
    their sum. Frames come out in the order their G-buffers went in, every one of them, one push
    late. ``encode_ms`` is this push's encode, ``wait_ms`` how long it waited for the worker,
    ``model_ms`` what the returned push's step took there; ``flush()`` returns the last push's
    frames; ``reset()`` drops them and starts a new ride."""

    def __init__(self, neural: NeuralRenderer):
        self.neural = neural
        self.wait_ms = self.encode_ms = self.model_ms = 0.0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="neural-pipeline")
        self._pending: tuple[Future | None, object] | None = None

    def push(self, gbuffer: GBuffer, tag: object = None) -> tuple[np.ndarray | None, object]:
        inputs = self.neural.collect(gbuffer)
        self.encode_ms = self.neural.times.encode_ms[-1]
        previous = self.flush()
        self._pending = (None if inputs is None else self._pool.submit(self._work, inputs), tag)
        return previous

    def _work(self, inputs: tuple) -> tuple[np.ndarray, float]:
        """In the worker: the step's frames and its milliseconds."""
        frames = self.neural.render(inputs)
        return frames, self.neural.times.model_ms[-1]

    def flush(self) -> tuple[np.ndarray | None, object]:
        """The frames of the push still in the worker (waiting for them) and its tag; (None, None)
        where there is none."""
        start = time.perf_counter()
        if self._pending is None:
            self.wait_ms = self.model_ms = 0.0
            return None, None
        future, tag = self._pending
        self._pending = None
        # a push that completed no step has no future; result() raises what the worker raised
        frames, self.model_ms = (None, 0.0) if future is None else future.result()
        self.wait_ms = (time.perf_counter() - start) * 1e3
        return frames, tag

    def reset(self) -> None:
        """A new ride: let the worker finish, drop its frames, reset the renderer."""
        self.flush()
        self.neural.reset()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
