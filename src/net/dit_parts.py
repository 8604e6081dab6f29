"""The DiT's parts: sigma features, adaLN modulation, patch tokens, the transformer block, and
the convolutional branches ``VelodreamDiT`` (``src/net/dit.py``) assembles around the blocks:
the conv stem, the smooth decoder and the refinement.

The builders only create layers; ``VelodreamDiT._init_weights`` sets their starting values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import FrozenDict
from torch import Tensor, nn

from src.net.attention import Attention


def sigma_embedding(sigma: Tensor, freqs: Tensor) -> Tensor:
    """Sinusoidal features of ``1000 sigma``: ``sigma`` b n (or b 1) -> b n 2*len(freqs)."""
    args = (sigma * 1000.0).unsqueeze(-1) * freqs  # b n half
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1.0 + scale) + shift


def patch_tokens(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """A patchifying strided ``conv`` (kernel = stride = p) applied to ``x`` B C h w -> tokens B L D.

    Eagerly it runs as one matrix product over the patches (the same sums as the convolution,
    about twice as fast on a CPU as its strided form at 224²); under ``torch.jit.trace`` (the
    ncnn export) it stays a strided convolution, since pnnx drops tensors of rank above 4.
    """
    if torch.jit.is_tracing():
        return conv(x).flatten(2).transpose(1, 2)
    b, c, h, w = x.shape
    p = conv.stride[0]
    patches = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)
    return F.linear(patches, conv.weight.flatten(1), conv.bias)  # B L D


class DiTBlock(nn.Module):
    """Pre-norm transformer block with adaLN-Zero (DiT): gates start at zero.

    ``shared_modulation``: the block has no adaLN layer of its own; the model's one layer makes
    the six modulation vectors for every block and each block adds its own learned offsets
    (adaLN-single, PixArt-alpha), 6D parameters a block instead of 6D(D + 1)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, *, shared_modulation: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        if shared_modulation:
            self.modulation = None
            self.modulation_offset = nn.Parameter(torch.zeros(6 * dim))
        else:
            self.modulation = nn.Linear(dim, 6 * dim)

    def forward(
        self, x: Tensor, c: Tensor, tokens_per_framelet: int | None, **attn_kwargs
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``x``: b N D; ``c``: b n D, one conditioning vector per framelet (with a shared
        modulation: b n 6D, the shared layer's output). With ``tokens_per_framelet`` given, each
        is repeated over its framelet's tokens (n = N / L); with None, ``c`` is b 1 D (6D) and
        broadcasts (the single-framelet path)."""
        mod = self.modulation(c) if self.modulation is not None else c + self.modulation_offset  # b n 6D
        if tokens_per_framelet is not None:
            mod = mod.repeat_interleave(tokens_per_framelet, dim=1)  # b N 6D
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)
        h, k, v = self.attn(modulate(self.norm1(x), shift1, scale1), **attn_kwargs)
        x = x + gate1 * h
        x = x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))
        return x, k, v


# -- the model's layers around the blocks, built from its config ---------------------------------
#
# Each builder reads ``VelodreamDiT``'s config (``@register_to_config`` stores it before the
# model's ``__init__`` body runs) and creates its layers in a fixed order, so that seeded
# initial values and state_dict keys do not change when this code moves.


def check_dit_config(cfg: FrozenDict) -> None:
    """Raise ValueError for a combination of ``VelodreamDiT`` arguments that cannot be built."""
    if cfg.hidden_dim % cfg.num_heads or (cfg.hidden_dim // cfg.num_heads) % 2:
        raise ValueError("hidden_dim / num_heads must be an even integer")
    if cfg.stem_scale not in (2, 4):
        raise ValueError(f"stem_scale must be 2 or 4, not {cfg.stem_scale!r}")
    if cfg.stem_channels and cfg.patch_size % cfg.stem_scale:
        raise ValueError(f"the conv stem needs a patch_size that stem_scale={cfg.stem_scale} divides")
    if cfg.decoder_scale not in (1, 2, 4):
        raise ValueError(f"decoder_scale must be 1, 2 or 4, not {cfg.decoder_scale!r}")
    if cfg.decoder_scale > 1 and (cfg.decoder != "smooth" or cfg.patch_size % cfg.decoder_scale):
        raise ValueError("decoder_scale > 1 needs the smooth decoder and a patch_size it divides")
    residual = cfg.residual_condition_channels
    if residual is not None and len(residual) != cfg.image_channels:
        raise ValueError("residual_condition_channels must name one condition plane per image channel")
    if cfg.decoder not in ("patch", "smooth"):
        raise ValueError(f"decoder must be 'patch' or 'smooth', not {cfg.decoder!r}")
    if cfg.modulation not in ("per_block", "shared"):
        raise ValueError(f"modulation must be 'per_block' or 'shared', not {cfg.modulation!r}")
    if cfg.condition_rank < 0:
        raise ValueError(f"condition_rank must be 0 (full) or positive, not {cfg.condition_rank!r}")


def condition_embedding(cfg: FrozenDict) -> tuple[nn.Conv2d, nn.Linear | None]:
    """(``cond_embed``, ``cond_expand``): the conditions' patch embedding, B (f C) h w -> tokens.
    With ``condition_rank`` r, 0 < r < D, it is factored through r values per patch (a
    patchifying conv to r, then a linear to the hidden size D): f C p p r + r D weights instead
    of f C p p D; 0, or r >= D (where factoring saves nothing), is the full embedding."""
    rank = cfg.condition_rank if 0 < cfg.condition_rank < cfg.hidden_dim else 0
    inputs, width = cfg.frames_per_framelet * cfg.condition_channels, rank or cfg.hidden_dim
    embed = nn.Conv2d(inputs, width, cfg.patch_size, stride=cfg.patch_size)
    return embed, nn.Linear(width, cfg.hidden_dim) if rank else None


def init_dit_weights(model: nn.Module) -> None:
    """``VelodreamDiT``'s starting values: xavier linears and patch embeddings, small sigma MLP,
    and adaLN-Zero (every residual branch, the output and the refinements start at zero)."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    for conv in (model.x_embed, model.cond_embed):
        nn.init.xavier_uniform_(conv.weight.view(conv.weight.shape[0], -1))
        nn.init.zeros_(conv.bias)
    nn.init.normal_(model.sigma_mlp[0].weight, std=0.02)
    nn.init.normal_(model.sigma_mlp[2].weight, std=0.02)
    zero = [model.final_modulation, model.head, model.shared_modulation]
    zero += [block.modulation for block in model.blocks]
    for layer in zero:
        if layer is not None:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
    for branch in (model.refine, model.smooth_decoder):
        if branch is not None:
            last_conv = [m for m in branch if isinstance(m, nn.Conv2d)][-1]
            nn.init.zeros_(last_conv.weight)
            nn.init.zeros_(last_conv.bias)


def conv_stem(cfg: FrozenDict) -> nn.Sequential | None:
    """Frames and conditions B (f (3 + C)) h w -> B D gh gw through PixelUnshuffle(``stem_scale``);
    None without ``stem_channels``."""
    if not cfg.stem_channels:
        return None
    f, stem_channels = cfg.frames_per_framelet, cfg.stem_channels
    # at quarter resolution a 4x4 pixel block is already wider than the 3x3 kernel over
    # 2x2 blocks saw, and a 3x3 over 384 folded channels would cost as much as the whole
    # half-resolution stem: the first conv is 1x1 there
    s, first_kernel = cfg.stem_scale, 3 if cfg.stem_scale == 2 else 1
    return nn.Sequential(
        nn.PixelUnshuffle(s),
        nn.Conv2d(
            s * s * f * (cfg.image_channels + cfg.condition_channels),
            stem_channels,
            first_kernel,
            padding=first_kernel // 2,
        ),
        nn.GELU(approximate="tanh"),
        nn.Conv2d(stem_channels, stem_channels, 3, padding=1),
        nn.GELU(approximate="tanh"),
        nn.Conv2d(stem_channels, cfg.hidden_dim, cfg.patch_size // s, stride=cfg.patch_size // s),
    )


def decoder_layers(cfg: FrozenDict) -> tuple[nn.Linear, nn.Conv2d | None, nn.Sequential | None]:
    """(``head``: tokens -> per-token values, ``decoder_condition``, ``smooth_decoder``), by ``decoder``."""
    f, image_channels, condition_channels = (
        cfg.frames_per_framelet,
        cfg.image_channels,
        cfg.condition_channels,
    )
    if cfg.decoder == "patch":
        return nn.Linear(cfg.hidden_dim, f * image_channels * cfg.patch_size * cfg.patch_size), None, None
    width = f * cfg.decoder_channels
    head = nn.Linear(cfg.hidden_dim, width)
    if cfg.decoder_scale == 1:
        smooth_decoder = nn.Sequential(
            nn.Conv2d(width + f * condition_channels, width, 3, padding=1),
            nn.GELU(approximate="tanh"),
            nn.Conv2d(width, f * image_channels, 3, padding=1),
        )
        return head, None, smooth_decoder
    # the smooth decoder at 1/s resolution, fed by every G-buffer pixel, shuffled back up
    s = cfg.decoder_scale
    decoder_condition = nn.Conv2d(s * s * f * condition_channels, width, 1)
    smooth_decoder = nn.Sequential(
        nn.Conv2d(2 * width, width, 3, padding=1),
        nn.GELU(approximate="tanh"),
        nn.Conv2d(width, s * s * f * image_channels, 3, padding=1),
        nn.PixelShuffle(s),
    )
    return head, decoder_condition, smooth_decoder


def refinement(cfg: FrozenDict) -> nn.Sequential | None:
    """Decoded frames + conditions B (f (3 + C)) h w -> a correction B (f 3) h w; None without
    ``refine_channels``."""
    if not cfg.refine_channels:
        return None
    f = cfg.frames_per_framelet
    return nn.Sequential(
        nn.Conv2d(f * (cfg.image_channels + cfg.condition_channels), cfg.refine_channels, 3, padding=1),
        nn.GELU(approximate="tanh"),
        nn.Conv2d(cfg.refine_channels, f * cfg.image_channels, 3, padding=1),
    )
