"""Generation framelet by framelet with the DiT's rolling KV cache (the eager ``CachedDenoiser``).

``CachedGeneration`` is a mixin of ``VelodreamDiT`` (``src/net/dit.py``): it turns a ``KVCache``
into the explicit past keys/values of ``VelodreamDiT.forward_framelet`` and back. The rollout
(``src/diffusion/rollout.py``) calls ``new_cache``, ``denoise_framelet``, ``push_context`` and
``denoise_framelet_and_push``; the ncnn backend offers the same four over a ``FixedKVCache``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from src.net.compiling import compile_quietly
from src.net.kv_cache import KVCache


class CachedGeneration:
    """The cached methods of ``VelodreamDiT``; ``static_cache`` pads the cache to its full
    window (masked empty slots) so every step has the same shapes (``compile_inference``)."""

    static_cache: bool = False

    def compile_inference(self, **compile_kwargs) -> None:
        """torch.compile the single-framelet path that generation runs, over a fixed-size cache
        (``static_cache``) so one graph serves every step of a ride, from the empty cache on."""
        self.static_cache = True
        self.forward_framelet = compile_quietly(self.forward_framelet, **compile_kwargs)

    def new_cache(self, batch: int, h: int, w: int) -> KVCache:
        gh, gw = self.grid_size(h, w)
        blocks = len(self.blocks)
        return KVCache(
            batch=batch,
            grid_h=gh,
            grid_w=gw,
            max_framelets=self.config.window_framelets - 1,
            keys=[None] * blocks,
            values=[None] * blocks,
        )

    def _run_cached(self, x: Tensor, cond: Tensor, sigma: Tensor, cache: KVCache):
        cfg = self.config
        b, f, _, h, w = x.shape
        if f != cfg.frames_per_framelet:
            raise ValueError(f"a framelet has {cfg.frames_per_framelet} frames, got {f}")
        gh, gw = self.grid_size(h, w)
        if (gh, gw) != (cache.grid_h, cache.grid_w):
            raise ValueError("the cache was made for another frame size")
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(b, 1)
        current = cfg.window_framelets - 1
        m = cache.num_framelets
        cos_q, sin_q = self.rope_tables(gh, gw, (current,), x.device, x.dtype)
        xf = x.reshape(b, f * x.shape[2], h, w)
        cf = cond.reshape(b, f * cond.shape[2], h, w)
        attn_mask = None
        if m > 0:  # the cached keys, rotated to window positions current - m .. current - 1
            cos_p, sin_p = self.rope_tables(gh, gw, tuple(range(current - m, current)), x.device, x.dtype)
            past_k, past_v = cache.rotated_past_keys(cos_p, sin_p), cache.values
        else:
            past_k = past_v = [None] * len(self.blocks)
        if self.static_cache and cache.max_framelets > 0:
            past_k, past_v, attn_mask = cache.fixed_size(
                past_k, past_v, heads=cfg.num_heads, head_dim=self.head_dim, like=x
            )
        out, new_k, new_v = self.forward_framelet(
            xf,
            cf,
            sigma,
            past_k=past_k,
            past_v=past_v,
            cos_q=cos_q,
            sin_q=sin_q,
            cos_k=None,
            sin_k=None,
            attn_mask=attn_mask,
            grid_h=gh,
            grid_w=gw,
            past_k_rotated=True,
            cond_tokens=cache.cond_tokens(cond, lambda c: self.embed_condition(c.reshape(b, -1, h, w))),
        )
        return out.reshape(b, f, -1, h, w), new_k, new_v

    def denoise_framelet(self, x_noisy: Tensor, cond: Tensor, sigma: Tensor, cache: KVCache) -> Tensor:
        """x0 prediction for one framelet ``x_noisy`` b f 3 h w at noise ``sigma`` (b,), attending
        to the cached context. Does not modify the cache."""
        out, _, _ = self._run_cached(x_noisy, cond, sigma, cache)
        return out

    def denoise_framelet_and_push(
        self, x_noisy: Tensor, cond: Tensor, sigma: Tensor, cache: KVCache
    ) -> Tensor:
        """``denoise_framelet``, then the keys and values this pass computed (at ``sigma``, attending
        to the cache) enter the cache as the framelet's context: the rollout's
        ``context_from_last_step``, which saves the context pass. Gradients flow through them
        when enabled (a distillation rollout)."""
        out, new_k, new_v = self._run_cached(x_noisy, cond, sigma, cache)
        cache.append(new_k, new_v)
        return out

    def push_context(
        self, x_ctx_noisy: Tensor, cond: Tensor, sigma_ctx: Tensor | float, cache: KVCache
    ) -> None:
        """Append a generated framelet to the cache as context.

        ``x_ctx_noisy`` b f 3 h w is the sampler's output already re-noised to ``sigma_ctx`` (b,)
        by ``src.diffusion.flow_matching.add_noise`` -- the noise augmentation the context gets
        in training (the rollout does the noising, so every backend draws the same noise). Its
        keys/values, computed at that noise level while attending to the current cache, enter
        the cache; the oldest framelet beyond ``window_framelets - 1`` is dropped.
        """
        if cache.max_framelets == 0:
            return
        b = x_ctx_noisy.shape[0]
        sigma_ctx = torch.as_tensor(sigma_ctx, dtype=x_ctx_noisy.dtype, device=x_ctx_noisy.device).reshape(-1)
        _, new_k, new_v = self._run_cached(x_ctx_noisy, cond, sigma_ctx.expand(b), cache)
        cache.append(new_k, new_v)
