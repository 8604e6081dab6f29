"""The runtimes' own thread count (``--threads`` of play, the benchmark and ``evaluate``) and
thread pools that sleep instead of spinning.

torch, ncnn and ONNX Runtime each keep a thread pool (torch and ncnn one OpenMP runtime each),
and by default each takes every core and spins between parallel regions. On a 2-core machine
that is doing something else too, a spinning pool's threads and a thread that the scheduler took
away stall every layer's barrier for a time slice: the model's own time stays put while the frame
loses tens to hundreds of milliseconds (``/work/shared/FIELD_NOTES.md``, "Thread pools under
load"). So the runtimes get one thread count of their own and are told not to spin.

Light on purpose (no torch at import): a script calls ``quiet_thread_pools`` before torch or ncnn
load, since OpenMP reads its environment once, when it starts (play, the benchmark and train_net do).
"""

from __future__ import annotations

import os


def available_cores() -> int:
    """The cores this process may run on (its affinity mask; all of them where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """One core fewer than the process may use (at least one): the game's own loop (world step,
    G-buffer, encode, display; in a window on a thread of its own beside the model's) and whatever
    else the player's machine runs keep a core that the model's pool does not fight for. On the
    shared 2-core machine, 1 and 2 threads timed alike, interleaved in one process, idle and
    beside a busy process (the student's ncnn step 14-15 against 16 ms idle, 11-29 against
    12-28 ms under load), so the default buys the game its core at no measured cost."""
    return max(1, available_cores() - 1)


def runtime_threads(threads: int | None) -> int:
    """``threads``, or the default where it is None or 0."""
    return int(threads) if threads else default_threads()


def quiet_thread_pools() -> None:
    """Ask the OpenMP runtimes (torch's and ncnn's libgomp) to sleep, not spin, when a parallel
    region ends, unless the user set a policy. Takes effect only before they start."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def set_torch_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count (``runtime_threads(threads)``); returns it."""
    import torch

    count = runtime_threads(threads)
    torch.set_num_threads(count)
    return count
