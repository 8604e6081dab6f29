"""A fixed background load for the play benchmark: busy processes started and stopped by it.

A player's machine always does something else too. ``BackgroundLoad(n)`` runs ``n`` processes
that each spin one core in pure Python (no threads, no memory traffic to speak of) for as long as
the ``with`` block lasts; each also stops by itself when the benchmark's process is gone, so a
killed benchmark leaves no spinning process behind. ``benchmark --background_load 1`` times every
row idle and then under this load (``src/bench/bench_play.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

# spins until told to stop or until its parent (the benchmark) is gone
_SPIN = """
import os, sys
parent = int(sys.argv[1])
while os.getppid() == parent:
    for _ in range(200_000):
        pass
"""


class BackgroundLoad:
    """``with BackgroundLoad(count):`` -- ``count`` busy processes for the block's duration."""

    def __init__(self, count: int):
        self.count = count
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> BackgroundLoad:
        for _ in range(self.count):
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", _SPIN, str(os.getpid())],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(0.5)  # let them start spinning before anything is timed
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"a background load process exited at once (exit {process.returncode})")
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (None where the system has none)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def under_load_columns(idle: dict, loaded: dict) -> dict:
    """What a row measured under the background load, beside its idle numbers."""
    return {
        "fps_under_load": loaded["fps"],
        "frame_ms_under_load": loaded["frame_ms"],
        "model_ms_per_step_under_load": loaded["model_ms_per_step"],
        "other_ms_under_load": loaded["other_ms"],
        "load_fps_ratio": loaded["fps"] / idle["fps"],
        "load_average_under_load": loaded["load_average"],
    }
