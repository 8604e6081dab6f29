"""The DiT's faster paths compute what the plain ones do: patch tokens by a matrix product equal
the strided convolution; the cache's kept rotated keys and condition tokens give the same
framelets as recomputing them; block-causal attention without a dense mask equals the mask."""

from __future__ import annotations

import pytest
import torch

from src.diffusion.flow_matching import make_sigmas
from src.diffusion.rollout import sample_framelet
from src.net.attention import block_causal_attention
from src.net.dit import VelodreamDiT
from src.net.dit_parts import patch_tokens
from src.net.export_step import FixedKVCache, FrameletStep
from tests.test_net_dit import LOW_RES, SMALL, randomized


def test_patch_tokens_equal_the_strided_convolution():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(18, 32, 4, stride=4)
    x = torch.randn(2, 18, 16, 12)
    reference = conv(x).flatten(2).transpose(1, 2)
    fast = patch_tokens(conv, x)
    assert fast.shape == reference.shape == (2, 12, 32)
    assert (fast - reference).abs().max().item() < 1e-5
    traced = torch.jit.trace(PatchTokens(conv), x)  # the ncnn export keeps the convolution
    assert any(node.kind() == "aten::_convolution" for node in traced.inlined_graph.nodes())
    assert (traced(x) - reference).abs().max().item() < 1e-5


class PatchTokens(torch.nn.Module):
    def __init__(self, conv: torch.nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        return patch_tokens(self.conv, x)


def rollout(model, step, *, context_from_last_step: bool, num_framelets: int = 4, h: int = 8, w: int = 12):
    """Frames of a ``num_framelets``-framelet rollout with 2 Euler steps, through ``step``:
    ``"cache"`` (the eager KVCache) or ``"fixed"`` (the export wrapper in torch: conv patches,
    unrotated keys, fixed-size cache with masked empty slots)."""
    generator = torch.Generator().manual_seed(3)
    sigmas = make_sigmas(2)
    if step == "cache":
        denoiser, cache = model, model.new_cache(1, h, w)
    else:
        denoiser = FixedStepDenoiser(FrameletStep(model, h, w))
        cache = denoiser.new_cache()
    frames = []
    for _ in range(num_framelets):
        noise = torch.randn(1, 2, 3, h, w, generator=generator)
        cond = torch.randn(1, 2, 9, h, w, generator=generator)
        x, _ = sample_framelet(
            denoiser,
            noise,
            cond,
            cache,
            sigmas=sigmas,
            context_sigma=0.1,
            context_from_last_step=context_from_last_step,
            generator=generator,
        )
        frames.append(x)
    return torch.cat(frames, dim=1)


class FixedStepDenoiser:
    """The exported step's maths, run eagerly: the plain path (every key rotated every step)."""

    def __init__(self, step: FrameletStep):
        self.step = step

    def new_cache(self):
        shapes = self.step.input_shapes()
        return FixedKVCache.empty(shapes[3], shapes[5])

    def _run(self, x, cond, sigma, cache):
        b, f, _, h, w = x.shape
        out, new_k, new_v = self.step(
            x.reshape(b, -1, h, w),
            cond.reshape(b, -1, h, w),
            sigma.reshape(1, 1),
            cache.past_k,
            cache.past_v,
            cache.attn_bias,
        )
        return out.reshape(b, f, 3, h, w), new_k, new_v

    def denoise_framelet(self, x, cond, sigma, cache):
        return self._run(x, cond, sigma, cache)[0]

    def denoise_framelet_and_push(self, x, cond, sigma, cache):
        out, new_k, new_v = self._run(x, cond, sigma, cache)
        cache.roll(new_k, new_v)
        return out

    def push_context(self, x, cond, sigma, cache):
        _, new_k, new_v = self._run(x, cond, sigma, cache)
        cache.roll(new_k, new_v)


@pytest.mark.parametrize(
    ("context_from_last_step", "options"), [(True, {}), (False, {}), (True, LOW_RES), (False, LOW_RES)]
)
def test_cached_rollout_equals_the_plain_step(context_from_last_step, options):
    model = randomized(VelodreamDiT(**SMALL, residual_condition_channels=(0, 1, 2), **options))
    with torch.no_grad():
        fast = rollout(model, "cache", context_from_last_step=context_from_last_step)
        plain = rollout(model, "fixed", context_from_last_step=context_from_last_step)
    assert (fast - plain).abs().max().item() < 1e-5


def test_kept_rotated_keys_and_condition_tokens_change_nothing():
    """With gradients enabled the cache recomputes both every step (as before): the same bits."""
    model = randomized(VelodreamDiT(**SMALL))
    with torch.no_grad():
        kept = rollout(model, "cache", context_from_last_step=True)
    with torch.enable_grad():
        recomputed = rollout(model, "cache", context_from_last_step=True).detach()
    assert torch.equal(kept, recomputed)


def test_condition_tokens_are_recomputed_when_the_condition_changes():
    model = randomized(VelodreamDiT(**SMALL))
    cache = model.new_cache(1, 8, 8)
    x, cond = torch.randn(1, 2, 3, 8, 8), torch.randn(1, 2, 9, 8, 8)
    sigma = torch.tensor([0.5])
    with torch.no_grad():
        before = model.denoise_framelet(x, cond, sigma, cache)
        cond.add_(1.0)  # in place: same tensor, new version
        after = model.denoise_framelet(x, cond, sigma, cache)
        fresh = model.denoise_framelet(x, cond.clone(), sigma, cache)
    assert not torch.equal(before, after)
    assert torch.equal(after, fresh)


def test_chunked_block_causal_attention_equals_the_dense_mask_with_gradients():
    generator = torch.Generator().manual_seed(0)
    b, heads, n, L, d, window = 2, 2, 5, 6, 16, 3
    q, k, v = (torch.randn(b, heads, n * L, d, generator=generator, requires_grad=True) for _ in range(3))
    kwargs = dict(framelet_tokens=L, window_framelets=window)
    reference = block_causal_attention(q, k, v, **kwargs, kernel="mask")
    out = block_causal_attention(q, k, v, **kwargs, kernel="chunked")
    assert (out - reference).abs().max().item() < 1e-5
    weights = torch.randn(out.shape, generator=generator)
    grads = torch.autograd.grad((out * weights).sum(), (q, k, v))
    reference_grads = torch.autograd.grad((reference * weights).sum(), (q, k, v))
    for g, r in zip(grads, reference_grads):
        assert (g - r).abs().max().item() < 1e-5


def test_flex_block_causal_attention_equals_the_dense_mask():
    """FlexAttention has no backward on the CPU: the forward is checked here, the GPU trains."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 5 * 6, 16, generator=generator) for _ in range(3))
    kwargs = dict(framelet_tokens=6, window_framelets=3)
    reference = block_causal_attention(q, k, v, **kwargs, kernel="mask")
    out = block_causal_attention(q, k, v, **kwargs, kernel="flex")
    assert (out - reference).abs().max().item() < 1e-5


def test_unknown_block_causal_kernel_is_refused():
    q = torch.zeros(1, 1, 4, 8)
    with pytest.raises(ValueError, match="chunked"):
        block_causal_attention(q, q, q, framelet_tokens=2, window_framelets=2, kernel="dense")


def test_parallel_forward_is_the_same_with_every_kernel():
    model = randomized(VelodreamDiT(**SMALL))
    generator = torch.Generator().manual_seed(1)
    x, cond = torch.randn(1, 8, 3, 8, 8, generator=generator), torch.randn(1, 8, 9, 8, 8, generator=generator)
    sigma = torch.rand(1, 4, generator=generator)
    outputs = {}
    with torch.no_grad():
        for kernel in ("mask", "chunked"):
            model.block_causal_kernel = kernel
            outputs[kernel] = model(x, cond, sigma)
    assert (outputs["chunked"] - outputs["mask"]).abs().max().item() < 1e-5


@pytest.mark.parametrize("decoder", ["patch", "smooth"])
def test_traced_step_for_the_export_equals_the_eager_step(decoder):
    """Under tracing (the ncnn export) patches are a strided conv and the patch head a
    pixel_shuffle; eagerly a matrix product and one rearrange: the same numbers."""
    model = randomized(VelodreamDiT(**SMALL, decoder=decoder))
    step = FrameletStep(model, 8, 12).eval()
    generator = torch.Generator().manual_seed(4)
    shapes = step.input_shapes()
    inputs = [torch.randn(shape, generator=generator) for shape in shapes[:5]]
    inputs.append(FixedKVCache.empty(shapes[3], shapes[5]).attn_bias)
    with torch.no_grad():
        eager = step(*inputs)
        traced = torch.jit.trace(step, tuple(inputs))(*inputs)
    for a, b in zip(eager, traced):
        assert (a - b).abs().max().item() < 1e-5
