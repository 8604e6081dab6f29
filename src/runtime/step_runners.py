"""The exported-step runners: a step graph exported to a runtime (ncnn, ONNX Runtime) behind the
same methods as the torch model of its kind.

``StepDenoiser`` has the DiT's ``CachedDenoiser`` protocol over a ``FixedKVCache`` of explicit
tensors; ``StepDirect`` a direct model's ``forward_frames``; ``StepRecurrent`` the student's
``initial_recurrence`` / ``forward_step``. Each wraps a loaded net of a runtime (``NcnnNet`` in
``src/runtime/ncnn_backend.py``, ``OnnxNet`` in ``src/runtime/onnx_backend.py``), whose call
returns the graph's outputs at their full shapes (batch axis included); ``src/runtime/kinds.py``
says which runner serves which model kind.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from src.net.export_step import FixedKVCache

StepNet = Callable[..., tuple[Tensor, ...]]  # NcnnNet or OnnxNet: ``net(*inputs)`` -> output tensors


class StepDenoiser:
    """The exported ``FrameletStep`` behind the ``CachedDenoiser`` protocol (batch 1)."""

    def __init__(self, net: StepNet, shapes: dict, *, frames_per_framelet: int):
        self.net = net
        self.inputs = [tuple(s) for s in shapes["inputs"]]  # x_noisy, cond, sigma, past_k, past_v, attn_bias
        self.height, self.width = shapes["frame_size"]
        self.frames_per_framelet = frames_per_framelet

    def new_cache(self, batch: int, h: int, w: int) -> FixedKVCache:
        if batch != 1 or (h, w) != (self.height, self.width):
            raise ValueError(
                f"this export renders batch 1 at {self.width}x{self.height}, asked {batch} at {w}x{h}"
            )
        return FixedKVCache.empty(self.inputs[3], self.inputs[5])

    def _run(self, x: Tensor, cond: Tensor, sigma: Tensor, cache: FixedKVCache):
        """x 1 f 3 h w, cond 1 f C h w, sigma (1,) -> (x0 1 f 3 h w, new_k, new_v)."""
        b, f, _, h, w = x.shape
        x0, new_k, new_v = self.net(
            x.reshape(1, -1, h, w),
            cond.reshape(1, -1, h, w),
            sigma.reshape(1, 1).float(),
            cache.past_k,
            cache.past_v,
            cache.attn_bias,
        )
        return x0.reshape(b, f, 3, h, w).to(x.dtype), new_k, new_v

    def denoise_framelet(self, x_noisy: Tensor, cond: Tensor, sigma: Tensor, cache: FixedKVCache) -> Tensor:
        return self._run(x_noisy, cond, sigma, cache)[0]

    def denoise_framelet_and_push(
        self, x_noisy: Tensor, cond: Tensor, sigma: Tensor, cache: FixedKVCache
    ) -> Tensor:
        """The step graph already returns this pass's keys and values: roll them into the cache."""
        x0, new_k, new_v = self._run(x_noisy, cond, sigma, cache)
        cache.roll(new_k, new_v)
        return x0

    def push_context(self, x_ctx_noisy: Tensor, cond: Tensor, sigma_ctx: Tensor, cache: FixedKVCache) -> None:
        _, new_k, new_v = self._run(x_ctx_noisy, cond, sigma_ctx, cache)
        cache.roll(new_k, new_v)


class StepDirect:
    """The exported ``DirectStep`` behind the direct models' ``forward_frames`` method."""

    def __init__(self, net: StepNet):
        self.net = net

    def forward_frames(self, cf: Tensor) -> Tensor:
        return self.net(cf)[0][None]  # ncnn drops the batch axis


class StepRecurrent:
    """The exported ``RecurrentStep`` behind the recurrent models' ``initial_recurrence`` /
    ``forward_step`` (batch 1, the export's frame size; shapes from the export's JSON)."""

    def __init__(self, net: StepNet, shapes: dict, *, initial_recurrence):
        self.net = net
        self.output_shapes = [tuple(s) for s in shapes["outputs"]]  # frame, feedback, state
        self.height, self.width = shapes["frame_size"]
        self._initial = initial_recurrence  # the model's own (the same starting tensors as torch)

    def initial_recurrence(self, batch: int, height: int, width: int, *, device=None, dtype=None):
        if batch != 1 or (height, width) != (self.height, self.width):
            raise ValueError(
                f"this export renders batch 1 at {self.width}x{self.height}, asked {batch} at {width}x{height}"
            )
        return self._initial(1, height, width, device="cpu", dtype=torch.float32)

    def forward_step(self, cond: Tensor, feedback: Tensor, state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        outputs = self.net(cond, feedback, state)
        frame, feedback, state = (x.reshape(shape) for x, shape in zip(outputs, self.output_shapes))
        return frame, feedback, state
