"""The Velodream DiT: a pixel-space, condition-driven, causal video diffusion transformer.

Read this file top to bottom; ``src/net/README.md`` explains the design choices.

* A *framelet* is ``frames_per_framelet`` consecutive frames stacked on the channel axis
  (``b (n f) c h w -> (b n) (f c) h w``); a token is a ``patch_size`` patch of a framelet.
  Frames and encoded condition planes are patchified by strided convolutions and added
  (plus an optional conv stem over both, for locality: PixelUnshuffle by ``stem_scale``, so it
  runs at half (2, a 3x3 first conv) or quarter (4, a 1x1 first conv over each 4x4 pixel block)
  resolution, then a 3x3 conv and a strided conv to the tokens).
* adaLN-Zero modulation by the framelet's own noise level sigma (diffusion forcing).
* Attention: qkv split by ``chunk``, QK-RMSNorm, rotate-half RoPE over (time, row, column)
  with cos/sin tables, ``scaled_dot_product_attention``. Framelets attend causally inside
  a sliding window of ``window_framelets`` framelets (themselves included).
* Decoding, by ``decoder``: ``"patch"`` unpatchifies by a linear layer + ``pixel_shuffle``
  (each token draws its own 8x8 block, so blocks can disagree at their edges: seams);
  ``"smooth"`` maps each token to ``decoder_channels`` features per frame, upsamples them
  bilinearly to pixels (continuous across token edges: no patch grid can be drawn) and
  decodes them with the full-resolution conditions by two 3x3 convolutions, so sharp edges
  come only from the G-buffer. With ``decoder_scale`` s > 1 the smooth decoder runs at 1/s
  resolution: the features are upsampled to (h/s, w/s), the full-resolution G-buffer enters
  folded by PixelUnshuffle(s) and mixed by a 1x1 conv, and the last conv emits s x s values per
  output channel that PixelShuffle(s) puts back at full resolution (a quarter or a sixteenth of
  the full-resolution decoder's pixels; still no token grid). Then an optional 3x3 conv
  refinement, and an optional residual on the albedo (flat-colour) condition planes:
  ``x0 = net + albedo``.
* The model predicts x0 (see ``src/diffusion/flow_matching.py``).

Every tensor on the single-framelet path has rank <= 4 when traced for the ncnn export
(``src/net/export_step.py``), so pnnx can convert it; eagerly, patchify and unpatchify take a
faster 6-D route to the same numbers. The blocks and convolutional branches live in
``src/net/dit_parts.py``, RoPE and attention in ``src/net/attention.py``, the rolling cache in
``src/net/kv_cache.py``, the cached generation methods in ``src/net/cached_generation.py``.

Temporal positions are *relative to the window*: the framelet being denoised is always at
temporal index ``window_framelets - 1`` and cached framelets sit just before it. RoPE
scores depend only on position differences, so this equals the absolute indices used by
the parallel training forward, and a rolling cache supports endless rides.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import Tensor, nn

from src.common.errors import UserError
from src.net.attention import rope_cos_sin
from src.net.cached_generation import CachedGeneration
from src.net.dit_parts import (
    DiTBlock,
    check_dit_config,
    condition_embedding,
    conv_stem,
    decoder_layers,
    init_dit_weights,
    modulate,
    patch_tokens,
    refinement,
    sigma_embedding,
)
from src.net.dit_sizes import DIT_PRESETS

# -- the model ---------------------------------------------------------------------------------


class VelodreamDiT(CachedGeneration, ModelMixin, ConfigMixin):
    """Pixel-space causal video DiT predicting clean frames (x0) from noisy frames + conditions."""

    _supports_gradient_checkpointing = True
    # sampled by the flow-matching rollout over new_cache / denoise_framelet / push_context
    # (or denoise_framelet_and_push)
    # (src/diffusion/rollout.py); exported to ncnn as one FrameletStep (src/net/export_step.py)
    renderer_kind = "diffusion"

    @register_to_config
    def __init__(
        self,
        *,
        image_channels: int = 3,
        condition_channels: int = 9,
        frames_per_framelet: int = 2,
        patch_size: int = 8,
        hidden_dim: int = 256,
        num_blocks: int = 6,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        window_framelets: int = 4,
        max_grid_h: int = 32,
        max_grid_w: int = 32,
        max_framelets: int = 64,
        residual_condition_channels: tuple[int, ...] | list[int] | None = None,
        stem_channels: int = 32,
        refine_channels: int = 32,
        rope_theta: float = 100.0,
        sigma_embedding_dim: int = 256,
        decoder: str = "patch",
        decoder_channels: int = 16,
        stem_scale: int = 2,
        decoder_scale: int = 1,
        modulation: str = "per_block",
        condition_rank: int = 0,
    ):
        super().__init__()
        # the builders read self.config, which @register_to_config fills before this body runs;
        # the layers are created in this order so that seeded initial values and state_dict keys
        # stay the same
        check_dit_config(self.config)
        f = frames_per_framelet
        self.head_dim = hidden_dim // num_heads
        self.x_embed = nn.Conv2d(f * image_channels, hidden_dim, patch_size, stride=patch_size)
        self.cond_embed, self.cond_expand = condition_embedding(self.config)
        self.stem = conv_stem(self.config)
        half = sigma_embedding_dim // 2
        self.register_buffer(
            "sigma_freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / half), persistent=False
        )
        self.sigma_mlp = nn.Sequential(
            nn.Linear(sigma_embedding_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim)
        )
        shared = modulation == "shared"
        self.blocks = nn.ModuleList(
            DiTBlock(hidden_dim, num_heads, mlp_ratio, shared_modulation=shared) for _ in range(num_blocks)
        )
        self.final_norm = nn.LayerNorm(hidden_dim, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Linear(hidden_dim, 2 * hidden_dim)
        self.head, self.decoder_condition, self.smooth_decoder = decoder_layers(self.config)
        self.refine = refinement(self.config)
        self.shared_modulation = nn.Linear(hidden_dim, 6 * hidden_dim) if shared else None
        self._rope_cache: dict[tuple, tuple[Tensor, Tensor]] = {}
        # how the parallel forward runs its block-causal attention (src/net/attention.py);
        # every kernel computes the same attention, so this is not part of the config
        self.block_causal_kernel = "chunked"
        self.gradient_checkpointing = False  # set by ModelMixin.enable_gradient_checkpointing()
        self._init_weights()

    def _init_weights(self) -> None:
        init_dit_weights(self)

    # -- a training run's model --

    @classmethod
    def from_run(cls, config, data) -> VelodreamDiT:
        """A run's DiT (``config.model``: preset + overrides), with its spec's condition channels (their
        number, the albedo as the residual) and a position grid for ``data.frame_hw``."""
        height, width = data.frame_hw
        overrides = dict(config.model.overrides)
        overrides["condition_channels"] = config.conditions.num_channels
        albedo = config.conditions.slices().get("albedo")
        residual = list(range(albedo.start, albedo.stop)) if albedo is not None else None
        overrides.setdefault("residual_condition_channels", residual)
        if config.model.preset not in DIT_PRESETS:
            raise UserError(
                f"unknown model preset '{config.model.preset}'", f"Choose from {', '.join(DIT_PRESETS)}."
            )
        preset = {**DIT_PRESETS[config.model.preset], **overrides}
        patch = preset["patch_size"]
        overrides.setdefault("max_grid_h", max(preset["max_grid_h"], math.ceil(height / patch)))
        overrides.setdefault("max_grid_w", max(preset["max_grid_w"], math.ceil(width / patch)))
        return cls(**{**DIT_PRESETS[config.model.preset], **overrides})

    @classmethod
    def card_description(cls, objective: str) -> list[str]:
        """What a run's model card says this model is, trained by ``objective``."""
        if objective == "distill":
            return [
                "A few-step pixel-space causal video DiT distilled from a flow-matching teacher on its own",
                "autoregressive rollouts (teacher ODE regression, distribution matching with a fake-score copy,",
                "and a discriminator that compares its game-ride frames with real video frames only).",
            ]
        return [
            "A pixel-space causal video DiT that turns the game's G-buffers into frames, trained by flow",
            "matching on real street video only (the game never appears in its training data).",
        ]

    # -- shapes and positions --

    def grid_size(self, h: int, w: int) -> tuple[int, int]:
        p = self.config.patch_size
        if h % p or w % p:
            raise ValueError(f"frame size {h}x{w} is not a multiple of patch_size {p}")
        gh, gw = h // p, w // p
        if gh > self.config.max_grid_h or gw > self.config.max_grid_w:
            raise ValueError(
                f"patch grid {gh}x{gw} exceeds max_grid {self.config.max_grid_h}x{self.config.max_grid_w}; "
                "reload with VelodreamDiT.from_pretrained(path, max_grid_h=..., max_grid_w=...) "
                "or call resize_positions()"
            )
        return gh, gw

    @property
    def frames_per_step(self) -> int:
        """Frames one generation step renders (a framelet)."""
        return int(self.config.frames_per_framelet)

    @property
    def detail_band(self) -> tuple[list[int] | None, int]:
        """(the albedo's condition planes, the scale below which its frames lack detail): the
        smooth decoder runs at 1/``decoder_scale`` (``src/runtime/renderer.py``)."""
        smooth = self.config.decoder == "smooth"
        return self.config.residual_condition_channels, self.config.decoder_scale if smooth else 1

    def check_frame_size(self, height: int, width: int) -> None:
        """Raise ValueError when the model cannot render ``height`` x ``width`` frames."""
        p = self.config.patch_size
        if height < p or width < p or height % p or width % p:
            raise ValueError(f"{width}x{height} is not a multiple of the model's patch size {p}")
        max_w, max_h = self.config.max_grid_w * p, self.config.max_grid_h * p
        if width > max_w or height > max_h:
            raise ValueError(f"{width}x{height} exceeds the model's largest grid ({max_w}x{max_h})")

    def frame_size_hint(self) -> str:
        """What sizes the model takes, for error messages."""
        p = self.config.patch_size
        return f"multiples of {p} up to {self.config.max_grid_w * p}x{self.config.max_grid_h * p}"

    def resize_positions(self, *, max_grid_h: int, max_grid_w: int, max_framelets: int | None = None) -> None:
        """Allow larger grids (fine-tuning at higher resolution). RoPE is computed from integer
        positions, so no weights change; only the limits stored in the config do."""
        self.register_to_config(max_grid_h=max_grid_h, max_grid_w=max_grid_w)
        if max_framelets is not None:
            self.register_to_config(max_framelets=max_framelets)

    def rope_tables(self, grid_h: int, grid_w: int, temporal_positions: tuple[int, ...], device, dtype):
        key = (grid_h, grid_w, tuple(temporal_positions), str(device), dtype)
        if key not in self._rope_cache:
            self._rope_cache[key] = rope_cos_sin(
                head_dim=self.head_dim,
                grid_h=grid_h,
                grid_w=grid_w,
                temporal_positions=temporal_positions,
                theta=self.config.rope_theta,
                device=device,
                dtype=dtype,
            )
        return self._rope_cache[key]

    # -- shared pieces: framelet images (4-D) <-> tokens --

    def embed_framelets(self, xf: Tensor, cf: Tensor, cond_tokens: Tensor | None = None) -> Tensor:
        """``xf``: B (f 3) h w, ``cf``: B (f C) h w -> tokens B L D (rows, then columns).
        ``cond_tokens``: ``embed_condition(cf)`` when the caller already has it."""
        if cond_tokens is None:
            cond_tokens = self.embed_condition(cf)
        tokens = patch_tokens(self.x_embed, xf) + cond_tokens
        if self.stem is not None:
            tokens = tokens + self.stem(torch.cat([xf, cf], dim=1)).flatten(2).transpose(1, 2)
        return tokens

    def embed_condition(self, cf: Tensor) -> Tensor:
        """The condition's share of the tokens: ``cf`` B (f C) h w -> B L D."""
        tokens = patch_tokens(self.cond_embed, cf)
        return tokens if self.cond_expand is None else self.cond_expand(tokens)

    def embed_sigma(self, sigma: Tensor) -> Tensor:
        """``sigma`` b n -> SiLU'd conditioning vectors b n D."""
        return F.silu(self.sigma_mlp(sigma_embedding(sigma, self.sigma_freqs)))

    def block_conditioning(self, c: Tensor) -> Tensor:
        """What the blocks take of ``embed_sigma``'s vectors: the vectors themselves, or with a
        shared modulation its six modulation vectors, computed once for every block."""
        return c if self.shared_modulation is None else self.shared_modulation(c)

    def unembed_framelets(self, tokens: Tensor, c: Tensor, cf: Tensor, grid_h: int, grid_w: int) -> Tensor:
        """tokens B L D, ``c`` B 1 D (or B L D), condition B (f C) h w -> x0 B (f 3) h w."""
        shift, scale = self.final_modulation(c).chunk(2, dim=-1)
        out = self.head(modulate(self.final_norm(tokens), shift, scale))  # B L (f 3 p p)
        p = self.config.patch_size
        if self.smooth_decoder is None and not torch.jit.is_tracing():  # one copy, not two
            out = rearrange(out, "b (gh gw) (c p1 p2) -> b c (gh p1) (gw p2)", gh=grid_h, p1=p, p2=p)
            return self._finish_output(out, cf)
        out = out.transpose(1, 2).reshape(out.shape[0], out.shape[2], grid_h, grid_w)
        if self.smooth_decoder is None:
            out = F.pixel_shuffle(out, p)  # B (f 3) h w; the export's form (rank <= 4)
        else:
            s = self.config.decoder_scale
            size = (grid_h * p // s, grid_w * p // s)
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
            if self.decoder_condition is None:
                condition = cf
            else:  # each s x s block of the full-resolution G-buffer, mixed to `width` channels
                condition = self.decoder_condition(F.pixel_unshuffle(cf, s))
            out = self.smooth_decoder(torch.cat([out, condition], dim=1))  # B (f 3) h w
        return self._finish_output(out, cf)

    def _finish_output(self, out: Tensor, cf: Tensor) -> Tensor:
        """The decoded B (f 3) h w, plus the albedo residual and the conv refinement when configured."""
        residual = self.config.residual_condition_channels
        if residual is not None:
            c_per_frame = self.config.condition_channels
            planes = []
            for frame in range(self.config.frames_per_framelet):
                for channel in residual:
                    index = frame * c_per_frame + channel
                    planes.append(cf[:, index : index + 1])
            out = out + torch.cat(planes, dim=1)
        if self.refine is not None:
            out = out + self.refine(torch.cat([out, cf], dim=1))
        return out

    # -- training / parallel forward --

    def forward(self, x_noisy: Tensor, cond: Tensor, sigma: Tensor) -> Tensor:
        """Parallel causal forward over a clip.

        ``x_noisy``: b t 3 h w, ``cond``: b t C h w, ``sigma``: b n (one level per framelet,
        ``n = t // frames_per_framelet``) -> x0 prediction b t 3 h w. Framelet ``i`` attends to
        framelets ``i - window_framelets + 1 .. i``.
        """
        cfg = self.config
        b, t, _, h, w = x_noisy.shape
        f = cfg.frames_per_framelet
        if t % f:
            raise ValueError(f"{t} frames is not a multiple of frames_per_framelet={f}")
        n = t // f
        if n > cfg.max_framelets:
            raise ValueError(f"{n} framelets exceed max_framelets={cfg.max_framelets}")
        if sigma.ndim == 1:
            sigma = sigma[:, None].expand(b, n)
        gh, gw = self.grid_size(h, w)
        L = gh * gw
        xf = rearrange(x_noisy, "b (n f) c h w -> (b n) (f c) h w", f=f)
        cf = rearrange(cond, "b (n f) c h w -> (b n) (f c) h w", f=f)
        tokens = rearrange(self.embed_framelets(xf, cf), "(b n) l d -> b (n l) d", b=b)
        c = self.embed_sigma(sigma.to(tokens.dtype))  # b n D
        blocks_c = self.block_conditioning(c)
        cos, sin = self.rope_tables(gh, gw, tuple(range(n)), tokens.device, tokens.dtype)
        attn_kwargs = dict(cos_q=cos, sin_q=sin, cos_k=cos, sin_k=sin)
        if n > 1:  # block-causal: each framelet sees itself and window_framelets - 1 before it
            attn_kwargs.update(
                framelet_tokens=L,
                window_framelets=cfg.window_framelets,
                block_causal_kernel=self.block_causal_kernel,
            )
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                tokens, _, _ = torch.utils.checkpoint.checkpoint(
                    block, tokens, blocks_c, L, use_reentrant=False, **attn_kwargs
                )
            else:
                tokens, _, _ = block(tokens, blocks_c, L, **attn_kwargs)
        tokens = rearrange(tokens, "b (n l) d -> (b n) l d", n=n)
        out = self.unembed_framelets(tokens, rearrange(c, "b n d -> (b n) 1 d"), cf, gh, gw)
        return rearrange(out, "(b n) (f c) h w -> b (n f) c h w", b=b, f=f)

    # -- one framelet against explicit past keys/values (the cached path and the ncnn export) --

    def forward_framelet(
        self,
        xf: Tensor,  # B (f 3) h w
        cf: Tensor,  # B (f C) h w
        sigma: Tensor,  # B 1
        *,
        past_k: list[Tensor | None],
        past_v: list[Tensor | None],
        cos_q: Tensor,
        sin_q: Tensor,
        cos_k: Tensor,
        sin_k: Tensor,
        attn_mask: Tensor | None,
        grid_h: int,
        grid_w: int,
        past_k_rotated: bool = False,
        cond_tokens: Tensor | None = None,
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """One framelet against explicit past keys/values; every tensor has rank <= 4 under
        tracing (the ncnn export).

        Shared by the eager cache path and the ncnn export wrapper. ``past_k_rotated``: the past
        keys already carry RoPE (``cos_k``/``sin_k`` are then unused); ``cond_tokens``: the
        condition's tokens, when the caller kept them from an earlier step.
        Returns (x0 B (f 3) h w, per-block new keys, per-block new values).
        """
        tokens = self.embed_framelets(xf, cf, cond_tokens)  # B L D
        c = self.embed_sigma(sigma)  # B 1 D
        blocks_c = self.block_conditioning(c)
        new_k, new_v = [], []
        for i, block in enumerate(self.blocks):
            tokens, k, v = block(
                tokens,
                blocks_c,
                None,
                cos_q=cos_q,
                sin_q=sin_q,
                cos_k=cos_k,
                sin_k=sin_k,
                past_k=past_k[i],
                past_v=past_v[i],
                attn_mask=attn_mask,
                past_k_rotated=past_k_rotated,
            )
            new_k.append(k)
            new_v.append(v)
        return self.unembed_framelets(tokens, c, cf, grid_h, grid_w), new_k, new_v
