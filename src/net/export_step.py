"""One DiT denoiser step with an explicit, fixed-size KV cache, and its ncnn export.

``FrameletStep(model, h, w)`` is the exported graph. Inputs (batch 1, rank <= 4):

    x_noisy    1 (f*3) h w      the framelet's frames stacked on channels
    cond       1 (f*C) h w      its encoded condition planes, stacked the same way
    sigma      1 1              its noise level
    past_k     1 (B*H) K d      keys of the W-1 cached framelets, blocks x heads on axis 1,
    past_v     1 (B*H) K d      K = (W-1) * L tokens, oldest framelet first (QK-normed, unrotated)
    attn_bias  1 L (K+L)        additive attention bias: 0, or -1e4 on empty cache slots

Outputs: ``x0_pred`` 1 (f*3) h w, ``new_k`` and ``new_v`` 1 (B*H) L d (this framelet's keys
and values). One graph serves both uses of a step: denoising (ignore ``new_k``/``new_v``)
and pushing context (feed the generated framelet re-noised to context_sigma, keep
``new_k``/``new_v``, roll them into the cache: ``past = cat(past[:, :, L:], new, dim=2)``).

Not-yet-full cache at the start of a ride: the cache is always K tokens long; empty slots
are the *oldest* ones, zero-filled and masked by ``attn_bias = -1e4`` (exp(-1e4) is 0 in
fp32 and fp16). This equals the eager model's shorter cache exactly because the current
framelet always sits at window position W-1 (RoPE positions are window-relative).
``KVCache.export_tensors`` and ``FrameletStep.empty_inputs`` build these tensors.

``src/runtime/ncnn_export.py`` traces the wrapper and runs pnnx; ``src/runtime/ncnn_backend.py``
runs the graph with a ``FixedKVCache`` behind the same ``CachedDenoiser`` protocol as the eager
model. One export per frame size (RoPE tables and patch grid are baked in).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from src.net.dit import VelodreamDiT
from src.net.kv_cache import EMPTY_SLOT_BIAS
from src.net.student import pixel_grid

INPUT_NAMES = ("x_noisy", "cond", "sigma", "past_k", "past_v", "attn_bias")
OUTPUT_NAMES = ("x0_pred", "new_k", "new_v")


@dataclasses.dataclass
class FixedKVCache:
    """The exported step's context: ``past_k``/``past_v`` 1 (B H) K d and ``attn_bias`` 1 L (K + L)."""

    past_k: Tensor
    past_v: Tensor
    attn_bias: Tensor

    @classmethod
    def empty(cls, past_shape: tuple[int, ...], bias_shape: tuple[int, ...]) -> FixedKVCache:
        """The cache of the first framelet of a ride: every context slot empty (masked)."""
        context_tokens = past_shape[2]
        bias = torch.full(bias_shape, EMPTY_SLOT_BIAS)
        bias[:, :, context_tokens:] = 0.0
        return cls(torch.zeros(past_shape), torch.zeros(past_shape), bias)

    def roll(self, new_k: Tensor, new_v: Tensor) -> None:
        """Append a framelet's keys and values (1 (B H) L d), dropping the oldest framelet."""
        self.past_k, bias = FrameletStep.roll(self.past_k, new_k, self.attn_bias)
        self.past_v, _ = FrameletStep.roll(self.past_v, new_v, self.attn_bias)
        self.attn_bias = bias


class FrameletStep(nn.Module):
    """``forward(x_noisy, cond, sigma, past_k, past_v, attn_bias) -> (x0_pred, new_k, new_v)``."""

    def __init__(self, model: VelodreamDiT, h: int, w: int):
        super().__init__()
        cfg = model.config
        if cfg.window_framelets < 2:
            raise ValueError("exporting a step needs window_framelets >= 2 (a model without context)")
        self.model = model
        self.h, self.w = h, w
        self.grid_h, self.grid_w = model.grid_size(h, w)
        self.tokens_per_framelet = self.grid_h * self.grid_w
        self.context_tokens = (cfg.window_framelets - 1) * self.tokens_per_framelet
        self.num_blocks, self.num_heads, self.head_dim = cfg.num_blocks, cfg.num_heads, model.head_dim
        current = cfg.window_framelets - 1
        cos_q, sin_q = model.rope_tables(self.grid_h, self.grid_w, (current,), "cpu", torch.float32)
        cos_k, sin_k = model.rope_tables(
            self.grid_h, self.grid_w, tuple(range(current + 1)), "cpu", torch.float32
        )
        self.register_buffer("cos_q", cos_q.clone(), persistent=False)
        self.register_buffer("sin_q", sin_q.clone(), persistent=False)
        self.register_buffer("cos_k", cos_k.clone(), persistent=False)
        self.register_buffer("sin_k", sin_k.clone(), persistent=False)

    def forward(
        self,
        x_noisy: Tensor,  # 1 (f 3) h w
        cond: Tensor,  # 1 (f C) h w
        sigma: Tensor,  # 1 1
        past_k: Tensor,  # 1 (B H) K d
        past_v: Tensor,  # 1 (B H) K d
        attn_bias: Tensor,  # 1 L (K + L)
    ) -> tuple[Tensor, Tensor, Tensor]:
        heads = self.num_heads
        keys = [past_k[:, i * heads : (i + 1) * heads] for i in range(self.num_blocks)]
        values = [past_v[:, i * heads : (i + 1) * heads] for i in range(self.num_blocks)]
        out, new_k, new_v = self.model.forward_framelet(
            x_noisy,
            cond,
            sigma,
            past_k=keys,
            past_v=values,
            cos_q=self.cos_q,
            sin_q=self.sin_q,
            cos_k=self.cos_k,
            sin_k=self.sin_k,
            attn_mask=attn_bias.unsqueeze(1),  # 1 1 L (K + L), broadcast over heads
            grid_h=self.grid_h,
            grid_w=self.grid_w,
        )
        return out, torch.cat(new_k, dim=1), torch.cat(new_v, dim=1)

    def input_shapes(self) -> list[tuple[int, ...]]:
        cfg = self.model.config
        f = cfg.frames_per_framelet
        bh = self.num_blocks * self.num_heads
        L, K = self.tokens_per_framelet, self.context_tokens
        return [
            (1, f * cfg.image_channels, self.h, self.w),
            (1, f * cfg.condition_channels, self.h, self.w),
            (1, 1),
            (1, bh, K, self.head_dim),
            (1, bh, K, self.head_dim),
            (1, L, K + L),
        ]

    def output_shapes(self) -> list[tuple[int, ...]]:
        bh = self.num_blocks * self.num_heads
        new = (1, bh, self.tokens_per_framelet, self.head_dim)
        return [self.input_shapes()[0], new, new]

    def empty_inputs(self) -> tuple[Tensor, Tensor, Tensor]:
        """``past_k``, ``past_v``, ``attn_bias`` for the first framelet of a ride (empty cache)."""
        shapes = self.input_shapes()
        cache = FixedKVCache.empty(shapes[3], shapes[5])
        return cache.past_k, cache.past_v, cache.attn_bias

    @staticmethod
    def roll(past: Tensor, new: Tensor, attn_bias: Tensor) -> tuple[Tensor, Tensor]:
        """Append ``new`` (1 (B H) L d) to a fixed-size cache, dropping the oldest framelet;
        the bias un-masks one more slot. Returns (past, attn_bias)."""
        L = new.shape[2]
        past = torch.cat([past[:, :, L:], new], dim=2)
        bias = torch.cat(
            [attn_bias[:, :, L:-L], torch.zeros_like(attn_bias[:, :, :L]), attn_bias[:, :, -L:]], dim=2
        )
        return past, bias


class DirectStep(nn.Module):
    """The exported graph of a "direct" renderer model: ``forward(cond 1 (f C) h w) -> 1 (f 3) h w``."""

    def __init__(self, model: nn.Module, h: int, w: int):
        super().__init__()
        model.check_frame_size(h, w)
        self.model = model
        self.h, self.w = h, w

    def forward(self, cond: Tensor) -> Tensor:
        return self.model.forward_frames(cond)

    def input_shapes(self) -> list[tuple[int, ...]]:
        f, c = self.model.frames_per_step, self.model.config.condition_channels
        return [(1, f * c, self.h, self.w)]

    def output_shapes(self) -> list[tuple[int, ...]]:
        return [(1, self.model.frames_per_step * 3, self.h, self.w)]


class RecurrentStep(nn.Module):
    """The exported graph of a "recurrent" renderer model (the student), one frame:
    ``forward(cond 1 C h w, feedback 1 F H W, state 1 S H/f W/f) -> (frame 1 3 H W, feedback, state)``.

    ``h`` x ``w`` is the output size (the condition is ``upscale`` times smaller). The pixel grid of
    the backward warp is a buffer (a constant of the graph), so the traced graph holds no
    ``arange``/``meshgrid``; the aspect ratio is a Python constant for the same reason.
    """

    def __init__(self, model: nn.Module, h: int, w: int):
        super().__init__()

        model.check_frame_size(h, w)
        self.model = model
        self.h, self.w = h, w
        self.aspect = w / h
        self.register_buffer("grid", pixel_grid(h, w), persistent=False)

    def forward(self, cond: Tensor, feedback: Tensor, state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.model.forward_step(cond, feedback, state, grid=self.grid, aspect=self.aspect)

    def input_shapes(self) -> list[tuple[int, ...]]:
        u = self.model.config.upscale
        cond = (1, self.model.config.condition_channels, self.h // u, self.w // u)
        return [cond, *self.model.recurrence_shapes(1, self.h, self.w)]

    def output_shapes(self) -> list[tuple[int, ...]]:
        feedback, state = self.model.recurrence_shapes(1, self.h, self.w)
        return [(1, 3, self.h, self.w), feedback, state]
