"""The DiT's rolling KV cache (eager generation); ``src/net/export_step.py`` has its fixed-size form."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from src.net.attention import apply_rope

EMPTY_SLOT_BIAS = -1e4  # exp(-1e4) is 0 in fp32 and fp16: a masked slot gets no weight


@dataclasses.dataclass
class KVCache:
    """Rolling cache of the last ``window_framelets - 1`` context framelets, per block.

    ``keys[i]``/``values[i]``: ``b heads (m L) d`` for block ``i``, ``m = num_framelets``
    cached framelets of ``L`` tokens each, oldest first. Keys are stored QK-normed but
    *not* rotated: RoPE is applied with window-relative positions at every step, so
    entries never need re-indexing when the window rolls.

    Without gradients, two things a framelet's denoising steps share are kept between them
    (the maths is unchanged, the same tensors are reused): the cached keys rotated to their
    window positions (they change only when a framelet is appended) and the condition's
    patch tokens (the same condition is passed at every step).
    """

    batch: int
    grid_h: int
    grid_w: int
    max_framelets: int  # window_framelets - 1
    keys: list[Tensor | None]
    values: list[Tensor | None]
    num_framelets: int = 0
    rotated_keys: list[Tensor] | None = None  # keys with RoPE, until the next append
    cond_memo: tuple[Tensor, int, Tensor] | None = None  # (cond, its version, its tokens)

    @property
    def tokens_per_framelet(self) -> int:
        return self.grid_h * self.grid_w

    def rotated_past_keys(self, cos: Tensor, sin: Tensor) -> list[Tensor]:
        """The cached keys rotated by the window table ``cos``/``sin`` ((m L) d); kept until the
        next ``append`` unless gradients are enabled (then computed afresh, as before)."""
        if torch.is_grad_enabled():
            return [apply_rope(k, cos, sin) for k in self.keys]
        if self.rotated_keys is None:
            self.rotated_keys = [apply_rope(k, cos, sin) for k in self.keys]
        return self.rotated_keys

    def cond_tokens(self, cond: Tensor, embed) -> Tensor:
        """``embed(cond)``, reused while the same unchanged ``cond`` tensor comes back with
        gradients disabled (a framelet's denoising steps)."""
        if torch.is_grad_enabled():
            return embed(cond)
        memo = self.cond_memo
        if memo is None or memo[0] is not cond or memo[1] != cond._version:
            memo = self.cond_memo = (cond, cond._version, embed(cond))
        return memo[2]

    def fixed_size(
        self,
        keys: list[Tensor | None],
        values: list[Tensor | None],
        *,
        heads: int,
        head_dim: int,
        like: Tensor,
    ) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """``keys``/``values`` (this cache's, possibly rotated) padded to the full window: the
        empty (oldest) slots hold zeros and are masked by ``EMPTY_SLOT_BIAS`` in the returned
        additive bias ``1 1 L (K + L)``, K = (window - 1) L, as in the ncnn export. The same shapes
        at every step, from the empty cache on: what ``torch.compile`` needs for one graph."""
        L = self.tokens_per_framelet
        context = self.max_framelets * L
        empty = context - self.num_framelets * L

        def pad(t: Tensor | None) -> Tensor:  # a fresh zero block each (no aliased inputs)
            if not empty:
                return t
            zeros = like.new_zeros(self.batch, heads, empty, head_dim)
            return zeros if t is None else torch.cat([zeros, t], dim=2)

        bias = like.new_zeros(1, 1, L, context + L)
        bias[..., :empty] = EMPTY_SLOT_BIAS
        return [pad(k) for k in keys], [pad(v) for v in values], bias

    def append(self, new_keys: list[Tensor], new_values: list[Tensor]) -> None:
        if self.max_framelets == 0:
            return
        self.rotated_keys = None
        keep = self.max_framelets * self.tokens_per_framelet
        for i, (k, v) in enumerate(zip(new_keys, new_values)):
            old_k, old_v = self.keys[i], self.values[i]
            k = k if old_k is None else torch.cat([old_k, k], dim=2)
            v = v if old_v is None else torch.cat([old_v, v], dim=2)
            # standard strides, whatever the slice: a compiled step sees one layout every step
            self.keys[i] = k[:, :, -keep:].clone(memory_format=torch.contiguous_format)
            self.values[i] = v[:, :, -keep:].clone(memory_format=torch.contiguous_format)
        self.num_framelets = min(self.num_framelets + 1, self.max_framelets)

    def export_tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        """The fixed-size form used by ``FrameletStep``: ``past_k``, ``past_v``, ``attn_bias``.

        ``past_k``/``past_v``: ``b (blocks heads) (W-1)L d``, empty (oldest) slots zero-filled;
        ``attn_bias``: ``b L (W L)`` additive bias, ``-1e4`` on empty slots, else 0.
        """
        if any(k is None for k in self.keys) and self.num_framelets > 0:
            raise RuntimeError("inconsistent cache")
        L = self.tokens_per_framelet
        ctx = self.max_framelets * L
        blocks = len(self.keys)
        ref = next((k for k in self.keys if k is not None), None)
        if ref is None:
            raise RuntimeError(
                "cannot export an empty cache before its shapes are known; use FrameletStep.empty_inputs"
            )
        b, heads, _, d = ref.shape
        past_k = ref.new_zeros(b, blocks * heads, ctx, d)
        past_v = ref.new_zeros(b, blocks * heads, ctx, d)
        filled = self.num_framelets * L
        for i in range(blocks):
            past_k[:, i * heads : (i + 1) * heads, ctx - filled :] = self.keys[i]
            past_v[:, i * heads : (i + 1) * heads, ctx - filled :] = self.values[i]
        bias = ref.new_zeros(b, L, ctx + L)
        bias[:, :, : ctx - filled] = EMPTY_SLOT_BIAS
        return past_k, past_v, bias
