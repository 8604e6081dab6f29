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
        cos_k: Tensor,  # (M + N) d, M = cached tokens
        sin_k: Tensor,
        past_k: Tensor | None = None,  # b heads M d (QK-normed, not rotated)
        past_v: Tensor | None = None,
        attn_mask: Tensor | None = None,  # bool (N, M+N) or additive float broadcastable
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Returns (output b N D, this input's keys and values b heads N d, keys unrotated)."""
        b, n, dim = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = self.q_norm(q.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2))
        k = self.k_norm(k.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2))
        v = v.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        keys = k if past_k is None else torch.cat([past_k, k], dim=2)
        values = v if past_v is None else torch.cat([past_v, v], dim=2)
        out = F.scaled_dot_product_attention(
            apply_rope(q, cos_q, sin_q), apply_rope(keys, cos_k, sin_k), values, attn_mask=attn_mask
        )  # b heads N d
        out = out.transpose(1, 2).reshape(b, n, dim)
        return self.proj(out), k, v
