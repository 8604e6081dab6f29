"""The equal-work benchmark's reference: a plain causal DiT, written the minimal way.

Framelet pixels and conditions patchified together by one linear layer, adaLN-Zero blocks whose
modulation is computed every pass, QK-normed attention with rotate-half RoPE, keys cached already
rotated at absolute positions (list of tensors, concatenated every pass), a linear head
unpatchified back to pixels. ``PlainSampler`` samples it the peer's way: ``steps`` Euler passes
per framelet, and the keys and values of the last pass become the framelet's context.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from src.diffusion.flow_matching import euler_sample, make_sigmas
from src.net.attention import apply_rope, rope_cos_sin


class PlainBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim)
        )
        self.modulation = nn.Linear(dim, 6 * dim)

    def forward(self, x: Tensor, c: Tensor, cos: Tensor, sin: Tensor, past: tuple[Tensor, Tensor] | None):
        """``x`` b n d, ``c`` b 1 d; ``cos``/``sin`` n hd at this framelet's absolute positions;
        ``past`` (keys rotated, values) b h m hd -> (x, this framelet's rotated keys and values)."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=-1)
        h = self.norm1(x) * (1 + scale1) + shift1
        q, k, v = rearrange(self.qkv(h), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        q, k = apply_rope(self.q_norm(q), cos, sin), apply_rope(self.k_norm(k), cos, sin)
        keys, values = (k, v) if past is None else (torch.cat([past[0], k], 2), torch.cat([past[1], v], 2))
        out = rearrange(F.scaled_dot_product_attention(q, keys, values), "b h n d -> b n (h d)")
        x = x + gate1 * self.proj(out)
        x = x + gate2 * self.mlp(self.norm2(x) * (1 + scale2) + shift2)
        return x, (k, v)


class PlainCausalDiT(nn.Module):
    """The reference model: ``denoise(x, cond, sigma, past, t)`` -> (x0, per-block (keys, values))."""

    def __init__(self, *, dim: int, blocks: int, heads: int, patch: int, frames: int, cond_channels: int):
        super().__init__()
        self.patch, self.frames, self.heads, self.dim = patch, frames, heads, dim
        self.embed = nn.Linear(patch * patch * frames * (3 + cond_channels), dim)
        self.sigma_mlp = nn.Sequential(nn.Linear(256, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.blocks = nn.ModuleList(PlainBlock(dim, heads) for _ in range(blocks))
        self.final_modulation = nn.Linear(dim, 2 * dim)
        self.final_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.head = nn.Linear(dim, patch * patch * frames * 3)
        self.register_buffer(
            "freqs", torch.exp(-math.log(10000.0) * torch.arange(128) / 128), persistent=False
        )
        self._tables: dict[tuple, tuple[Tensor, Tensor]] = {}

    def tables(self, t: int, gh: int, gw: int) -> tuple[Tensor, Tensor]:
        if (t, gh, gw) not in self._tables:  # once per framelet (both steps share it)
            head_dim = self.dim // self.heads
            self._tables = {}
            self._tables[t, gh, gw] = rope_cos_sin(
                head_dim=head_dim, grid_h=gh, grid_w=gw, temporal_positions=[t], theta=100.0
            )
        return self._tables[t, gh, gw]

    def denoise(self, x: Tensor, cond: Tensor, sigma: float, past: list | None, t: int):
        """``x`` b f 3 h w, ``cond`` b f C h w, framelet index ``t`` (absolute)."""
        p = self.patch
        cos, sin = self.tables(t, x.shape[-2] // p, x.shape[-1] // p)
        return self.network(x, cond, torch.full((x.shape[0], 1, 1), float(sigma)), past, cos, sin)

    def network(self, x: Tensor, cond: Tensor, sigma: Tensor, past: list | None, cos: Tensor, sin: Tensor):
        """The pass itself, over tensors only (``sigma`` b 1 1, RoPE tables at this framelet's
        positions), so ``torch.compile`` sees the same graph at every step and framelet."""
        b, f, _, h, _ = x.shape
        p = self.patch
        gh = h // p
        pixels = torch.cat([x, cond], dim=2)
        tokens = self.embed(rearrange(pixels, "b f c (gh p1) (gw p2) -> b (gh gw) (p1 p2 f c)", p1=p, p2=p))
        args = sigma * 1000.0 * self.freqs
        c = F.silu(self.sigma_mlp(torch.cat([args.cos(), args.sin()], dim=-1)))  # b 1 d
        new = []
        for i, block in enumerate(self.blocks):
            tokens, kv = block(tokens, c, cos, sin, None if not past else past[i])
            new.append(kv)
        shift, scale = self.final_modulation(c).chunk(2, dim=-1)
        out = self.head(self.final_norm(tokens) * (1 + scale) + shift)
        out = rearrange(out, "b (gh gw) (p1 p2 f c) -> b f c (gh p1) (gw p2)", gh=gh, p1=p, p2=p, f=f)
        return out, new


class PlainSampler:
    """The reference's generation: ``steps`` passes per framelet; the last pass's rotated keys
    and values join a window of ``window - 1`` cached framelets."""

    def __init__(self, model: PlainCausalDiT, *, steps: int, window: int):
        self.model, self.sigmas, self.window = model, make_sigmas(steps), window
        self.cache: list[list[tuple[Tensor, Tensor]]] = []  # framelets, oldest first; per block (k, v)
        self.t = 0

    def framelet(self, noise: Tensor, cond: Tensor) -> Tensor:
        past = None
        if self.cache:
            past = [
                tuple(torch.cat([fr[i][j] for fr in self.cache], dim=2) for j in range(2))
                for i in range(len(self.model.blocks))
            ]
        passes = []

        def denoise(x: Tensor, sigma: Tensor, step: int) -> Tensor:
            x0, new = self.model.denoise(x, cond, float(sigma[0]), past, self.t)
            passes.append(new)
            return x0

        x = euler_sample(denoise, noise * float(self.sigmas[0]), self.sigmas)
        new = passes[-1]  # the last pass's keys and values
        self.cache = (self.cache + [new])[-(self.window - 1) :] if self.window > 1 else []
        self.t += 1
        return x
