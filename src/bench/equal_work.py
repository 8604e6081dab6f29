"""Equal-work benchmark: our DiT's framelet against a plain causal DiT of the same shapes.

The reference (``PlainCausalDiT``) is the minimal way to build such a model, written here so the
comparison needs no outside code: framelet pixels and conditions patchified together by one
linear layer, adaLN-Zero blocks whose modulation is computed every pass, QK-normed attention with
rotate-half RoPE, keys cached already rotated at absolute positions (list of tensors, concatenated
every pass), a linear head unpatchified back to pixels. Sampling is the peer's way: ``steps``
Euler passes per framelet, and the keys and values of the last pass become the framelet's context
(no separate context pass). Ours runs the same schedule through ``src.diffusion.rollout``
(``context_from_last_step``), or ``ours_steps`` passes (1: the distilled model's one pass, whose
keys become the context). Both use random weights, batch 1, fp32 on the CPU; rounds interleave
the systems so machine load hits them alike.

    uv run python -m src.scripts.bench_equal_work
    uv run python -m src.scripts.bench_equal_work --systems '[reference, ours, ours_stem_smooth]' --rounds 5
    uv run python -m src.scripts.bench_equal_work --ours_steps 1 --compile true
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from src.bench.config import SYSTEMS, EqualWorkConfig
from src.common.errors import UserError
from src.common.io import report_table_and_json
from src.diffusion.flow_matching import euler_sample, make_sigmas
from src.diffusion.rollout import sample_framelet
from src.net.attention import apply_rope, rope_cos_sin
from src.net.dit import VelodreamDiT

# -- the reference: a plain causal DiT ----------------------------------------------------------


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


# -- ours ---------------------------------------------------------------------------------------


class OurSampler:
    def __init__(self, model: VelodreamDiT, *, steps: int, h: int, w: int):
        self.model, self.sigmas = model, make_sigmas(steps)
        self.cache = model.new_cache(1, h, w)

    def framelet(self, noise: Tensor, cond: Tensor) -> Tensor:
        x, _ = sample_framelet(
            self.model,
            noise,
            cond,
            self.cache,
            sigmas=self.sigmas,
            context_sigma=0.0,
            context_from_last_step=True,
        )
        return x


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random weights everywhere (zero-initialised adaLN gates would skip work in neither model,
    but make the outputs meaningless)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.02 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def build_system(name: str, config: EqualWorkConfig):
    c = config
    if name == "reference":
        model = PlainCausalDiT(
            dim=c.hidden_dim,
            blocks=c.num_blocks,
            heads=c.num_heads,
            patch=c.patch_size,
            frames=c.frames_per_framelet,
            cond_channels=c.condition_channels,
        )
        randomize(model, c.seed)
        if c.compile:
            model.network = torch.compile(model.network)
        return model, PlainSampler(model, steps=c.steps, window=c.window_framelets)
    if name not in SYSTEMS:
        raise UserError(f"unknown system {name!r}", f"choose from {', '.join(SYSTEMS)}")
    grid = c.resolution // c.patch_size
    stem_smooth = name == "ours_stem_smooth"
    smooth = stem_smooth or name == "ours_smooth_half"
    model = VelodreamDiT(
        hidden_dim=c.hidden_dim,
        num_blocks=c.num_blocks,
        num_heads=c.num_heads,
        patch_size=c.patch_size,
        frames_per_framelet=c.frames_per_framelet,
        condition_channels=c.condition_channels,
        window_framelets=c.window_framelets,
        max_grid_h=grid,
        max_grid_w=grid,
        stem_channels=32 if stem_smooth else 0,
        refine_channels=32 if stem_smooth else 0,
        decoder="smooth" if smooth else "patch",
        decoder_scale=2 if name == "ours_smooth_half" else 1,
    )
    randomize(model, c.seed)
    if c.compile:
        model.compile_inference()
    return model, OurSampler(model, steps=c.ours_steps or c.steps, h=c.resolution, w=c.resolution)


@torch.no_grad()
def run_equal_work(config: EqualWorkConfig) -> dict:
    if config.resolution % config.patch_size:
        raise UserError(
            f"resolution {config.resolution} is not a multiple of patch_size {config.patch_size}",
            "pick a resolution that the patch size divides",
        )
    if config.ours_steps < 0 or config.steps < 1:
        raise UserError(
            f"steps {config.steps} / ours_steps {config.ours_steps}",
            "give steps >= 1 and ours_steps >= 0 (0: the same as steps)",
        )
    if config.threads:
        torch.set_num_threads(config.threads)
    generator = torch.Generator().manual_seed(config.seed)
    f, r = config.frames_per_framelet, config.resolution
    systems = {name: build_system(name, config) for name in config.systems}

    def inputs():
        noise = torch.randn(1, f, 3, r, r, generator=generator)
        return noise, torch.randn(1, f, config.condition_channels, r, r, generator=generator)

    for _, sampler in systems.values():
        for _ in range(config.warmup_framelets):
            sampler.framelet(*inputs())
    rounds: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(config.rounds):
        for name, (_, sampler) in systems.items():
            times = []
            for _ in range(config.framelets_per_round):
                noise, cond = inputs()
                start = time.perf_counter()
                sampler.framelet(noise, cond)
                times.append((time.perf_counter() - start) * 1e3)
            rounds[name].append(statistics.median(times))
    rows = []
    for name, (model, _) in systems.items():
        rows.append(
            {
                "system": name,
                "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
                "ms_per_framelet_rounds": rounds[name],
                "best_ms": min(rounds[name]),
                "median_ms": statistics.median(rounds[name]),
            }
        )
    if "reference" in rounds:
        ref_best = min(rounds["reference"])
        ref_rounds = rounds["reference"]
        for row in rows:
            row["best_vs_reference"] = row["best_ms"] / ref_best
            row["per_round_vs_reference"] = [a / b for a, b in zip(row["ms_per_framelet_rounds"], ref_rounds)]
    return {
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "config": dataclasses.asdict(config),
        "rows": rows,
    }


def format_table(result: dict) -> str:
    rounds = result["config"]["rounds"]
    header = f"{'system':>17} {'params':>7} " + " ".join(f"{'round ' + str(i + 1):>8}" for i in range(rounds))
    header += f" {'best':>7} {'vs ref':>7}"
    lines = [header, "-" * len(header)]
    for row in result["rows"]:
        cells = " ".join(f"{ms:>8.1f}" for ms in row["ms_per_framelet_rounds"])
        ratio = f"{row['best_vs_reference']:>7.2f}" if "best_vs_reference" in row else f"{'':>7}"
        lines.append(f"{row['system']:>17} {row['params_m']:>6.2f}M {cells} {row['best_ms']:>7.1f} {ratio}")
    c = result["config"]
    lines.append(
        f"(ms per {c['frames_per_framelet']}-frame framelet, median of {c['framelets_per_round']} per round, "
        f"{c['resolution']}², patch {c['patch_size']}, {c['steps']} steps"
        f"{' (ours: ' + str(c['ours_steps']) + ')' if c['ours_steps'] else ''}, window {c['window_framelets']}, "
        f"{result['machine']['torch_threads']} threads{', compiled' if c['compile'] else ''}; "
        "vs ref = best / reference's best)"
    )
    return "\n".join(lines)


def run_and_report(config: EqualWorkConfig) -> dict:
    result = run_equal_work(config)
    return report_table_and_json(format_table(result), result, config.json_out)
