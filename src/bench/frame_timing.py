"""The play benchmark's frame loop: one autopilot frame after another, each stage timed.

Two ways to run the model, as ``benchmark --pipeline`` chooses:

- in sequence (``NeuralRenderer``): world, G-buffer, encode, model and display one after another;
  they and ``other`` (the loop's own time and waits for a core) add up to the frame;
- pipelined (``PipelinedRenderer``): the model's worker thread renders frame N while this loop
  displays frame N-1 and makes and encodes frame N+1's G-buffer. The loop's own stages (world,
  G-buffer, encode, display), ``wait`` (for the worker) and ``other`` add up to the frame; the
  model runs beside them, in the worker.

``latency`` is input to display: from the start of the frame whose world step (the rider's
input) made a G-buffer, to the end of the display of the neural frame made from it. In sequence
that is one frame; pipelined, about two.
"""

from __future__ import annotations

import time

import numpy as np

from src.common.progress import tqdm  # plain lines when the output is not a terminal
from src.play.neural import PipelinedRenderer

STAGES = ("world", "render", "encode", "model", "wait", "display", "frame", "latency")


def time_frames(
    session, neural, display, *, frames: int, warmup_frames: int, progress_label: str
) -> dict[str, list[float]]:
    """Milliseconds per stage of every frame after the warm-up (``STAGES``; ``latency`` only for
    frames that showed a new neural frame). ``neural``: None (the raster), a ``NeuralRenderer``
    or a ``PipelinedRenderer``."""
    pipelined = isinstance(neural, PipelinedRenderer)
    times: dict[str, list[float]] = {name: [] for name in STAGES}
    latest = None
    for index in tqdm(range(warmup_frames + frames), desc=progress_label, leave=False):
        start = time.perf_counter()
        before = dict(session.timings)
        gbuffer, _, _ = session.frame(None)
        if session.world.game_over:
            session.restart()
            if neural is not None:
                neural.reset()
        shown, encoded, modelled, waited, made_at = gbuffer.color, 0.0, 0.0, 0.0, None
        if pipelined:
            out, made_at = neural.push(gbuffer, start)
            encoded, modelled, waited = neural.encode_ms, neural.model_ms, neural.wait_ms
        elif neural is not None:
            out, made_at = neural.push(gbuffer), start
            encoded = neural.times.encode_ms[-1]
            modelled = neural.times.model_ms[-1] if out is not None else 0.0  # the step this push ran
        if neural is not None:
            if out is not None:
                latest = out[-1]
            shown = latest if latest is not None else shown
        display_start = time.perf_counter()
        if display is not None:
            display.show(shown)
        end = time.perf_counter()
        if index < warmup_frames:
            continue
        times["frame"].append((end - start) * 1e3)
        times["world"].append((session.timings["world"] - before["world"]) * 1e3)
        times["render"].append((session.timings["render"] - before["render"]) * 1e3)
        times["encode"].append(encoded)
        times["model"].append(modelled)
        times["wait"].append(waited)
        times["display"].append((end - display_start) * 1e3 if display is not None else 0.0)
        if neural is not None and out is not None:
            times["latency"].append((end - made_at) * 1e3)
    return times


def stage_means(times: dict[str, list[float]], *, pipelined: bool) -> dict[str, float]:
    """A row's mean milliseconds per stage, its FPS and latency, and ``other_ms``: the frame less
    the loop's stages (pipelined, the model runs beside the loop: its wait counts instead)."""
    row = {
        "pipelined": pipelined,
        "world_ms": float(np.mean(times["world"])),
        "gbuffer_ms": float(np.mean(times["render"])),
        "display_ms": float(np.mean(times["display"])),
        "encode_ms": float(np.mean(times["encode"])),
        "model_ms_per_frame": float(np.mean(times["model"])),
        "wait_ms": float(np.mean(times["wait"])),
        "latency_ms": float(np.mean(times["latency"])) if times["latency"] else 0.0,
        "frame_ms": float(np.mean(times["frame"])),
    }
    row["fps"] = 1e3 / row["frame_ms"]
    stages = ("world_ms", "gbuffer_ms", "encode_ms", "display_ms", "wait_ms")
    if not pipelined:
        stages += ("model_ms_per_frame",)
    row["other_ms"] = row["frame_ms"] - sum(row[name] for name in stages)
    return row
