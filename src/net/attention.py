"""Attention pieces of the DiT: rotate-half RoPE over (time, row, column), and QK-normed attention.

Every tensor has rank <= 4 so pnnx/ncnn can convert the single-framelet path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# -- rotary position embedding ---------------------------------------------------------------


def rope_axis_split(head_dim: int) -> tuple[int, int, int]:
    """How many of the ``head_dim // 2`` rotation frequencies go to (time, rows, columns)."""
    half = head_dim // 2
    temporal = half // 4
    rows = (half - temporal) // 2
    return temporal, rows, half - temporal - rows


def rope_cos_sin(
    *,
    head_dim: int,
    grid_h: int,
    grid_w: int,
    temporal_positions: list[int] | tuple[int, ...],
    theta: float,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """cos/sin tables, each ``(len(temporal_positions) * grid_h * grid_w, head_dim)``.

    Token order is (time, row, column). Rotate-half layout: frequency ``i`` rotates the
    pair ``(i, i + head_dim / 2)``; the first frequencies encode time, then rows, then
    columns. Computed from integer positions, so any grid size works (no table to resize).
    """
    n_t, n_h, n_w = rope_axis_split(head_dim)

    def freqs(n: int) -> Tensor:
        return theta ** (-torch.arange(n, dtype=torch.float64) / max(n, 1))

    t = torch.tensor(list(temporal_positions), dtype=torch.float64)
    r = torch.arange(grid_h, dtype=torch.float64)
    c = torch.arange(grid_w, dtype=torch.float64)
    tt, rr, cc = torch.meshgrid(t, r, c, indexing="ij")
    angles = torch.cat(
        [
            tt.reshape(-1, 1) * freqs(n_t),
            rr.reshape(-1, 1) * freqs(n_h),
            cc.reshape(-1, 1) * freqs(n_w),
        ],
        dim=-1,
    )  # N half
    angles = torch.cat([angles, angles], dim=-1)  # N d
    return angles.cos().to(device=device, dtype=dtype), angles.sin().to(device=device, dtype=dtype)


def rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """``x``: b heads N d; ``cos``/``sin``: N d."""
    return x * cos + rotate_half(x) * sin


# -- attention ----------------------------------------------------------------------------------


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(self.head_dim, eps=1e-6)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: Tensor,  # b N D
        *,
        cos_q: Tensor,  # N d
        sin_q: Tensor,
        cos_k: Tensor | None,  # (M + N) d, M = cached tokens (unused when past_k_rotated)
        sin_k: Tensor | None,
        past_k: Tensor | None = None,  # b heads M d (QK-normed; rotated only if past_k_rotated)
        past_v: Tensor | None = None,
        attn_mask: Tensor | None = None,  # bool (N, M+N) or additive float broadcastable
        past_k_rotated: bool = False,
        framelet_tokens: int | None = None,
        window_framelets: int | None = None,
        block_causal_kernel: str = "chunked",
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Returns (output b N D, this input's keys and values b heads N d, keys unrotated).

        ``past_k_rotated``: ``past_k`` already carries RoPE at its window positions (the eager
        cache rotates it once per framelet); this input's keys are then rotated with the
        queries' tables, since they sit at the queries' positions. ``framelet_tokens`` and
        ``window_framelets`` (with ``attn_mask`` None) ask for block-causal attention over a
        whole clip, run by ``block_causal_attention`` with ``block_causal_kernel``.
        """
        b, n, dim = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = self.q_norm(q.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2))
        k = self.k_norm(k.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2))
        v = v.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        values = v if past_v is None else torch.cat([past_v, v], dim=2)
        if past_k_rotated:
            rotated_k = apply_rope(k, cos_q, sin_q)
            rotated_keys = rotated_k if past_k is None else torch.cat([past_k, rotated_k], dim=2)
        else:
            keys = k if past_k is None else torch.cat([past_k, k], dim=2)
            rotated_keys = apply_rope(keys, cos_k, sin_k)
        rotated_q = apply_rope(q, cos_q, sin_q)
        if framelet_tokens is not None and attn_mask is None:
            out = block_causal_attention(
                rotated_q,
                rotated_keys,
                values,
                framelet_tokens=framelet_tokens,
                window_framelets=window_framelets,
            )
        else:
            out = F.scaled_dot_product_attention(
                rotated_q, rotated_keys, values, attn_mask=attn_mask
            )  # b heads N d
        out = out.transpose(1, 2).reshape(b, n, dim)
        return self.proj(out), k, v


# -- block-causal attention over a clip (the training forward) ---------------------------------

BLOCK_CAUSAL_KERNELS = ("chunked", "flex", "mask")


def block_causal_mask(num_framelets: int, framelet_tokens: int, window_framelets: int, device=None) -> Tensor:
    """Dense bool mask N N (N = num_framelets * framelet_tokens): token of framelet i may attend
    to framelets i - window_framelets + 1 .. i. The reference the fused kernels are tested against."""
    framelet_of_token = torch.arange(num_framelets, device=device).repeat_interleave(framelet_tokens)
    delta = framelet_of_token[:, None] - framelet_of_token[None, :]
    return (delta >= 0) & (delta < window_framelets)


def block_causal_attention(
    q: Tensor,  # b heads N d, N = n L, rotated
    k: Tensor,  # b heads N d, rotated
    v: Tensor,  # b heads N d
    *,
    framelet_tokens: int,
    window_framelets: int,
    kernel: str = "chunked",
) -> Tensor:
    """Attention of every framelet to itself and the ``window_framelets - 1`` before it -> b heads N d.

    ``"chunked"``: one ``scaled_dot_product_attention`` per framelet over the contiguous key range
    it may see, with no mask, so a GPU can take its flash / memory-efficient kernels (a dense mask
    rules them out) and no N x N mask or score matrix is built. ``"flex"``: FlexAttention with a
    block mask (``torch.nn.attention.flex_attention``; fast only under ``torch.compile`` on a GPU).
    ``"mask"``: today's dense boolean mask, the reference.
    """
    L, W = framelet_tokens, window_framelets
    n = q.shape[2] // L
    if kernel == "mask":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=block_causal_mask(n, L, W, q.device))
    if kernel == "flex":
        return _flex_block_causal(q, k, v, framelet_tokens=L, window_framelets=W)
    if kernel != "chunked":
        raise ValueError(f"block-causal kernel must be one of {BLOCK_CAUSAL_KERNELS}, not {kernel!r}")
    outs = []
    for i in range(n):
        first = max(0, i - W + 1) * L
        outs.append(
            F.scaled_dot_product_attention(
                q[:, :, i * L : (i + 1) * L], k[:, :, first : (i + 1) * L], v[:, :, first : (i + 1) * L]
            )
        )
    return torch.cat(outs, dim=2)


def _flex_block_causal(
    q: Tensor, k: Tensor, v: Tensor, *, framelet_tokens: int, window_framelets: int
) -> Tensor:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention  # optional, heavy

    L, W = framelet_tokens, window_framelets

    def in_window(b, h, q_idx, kv_idx):
        delta = q_idx // L - kv_idx // L
        return (delta >= 0) & (delta < W)

    n_tokens = q.shape[2]
    block_mask = create_block_mask(
        in_window, B=None, H=None, Q_LEN=n_tokens, KV_LEN=n_tokens, device=q.device
    )
    return flex_attention(q, k, v, block_mask=block_mask)
