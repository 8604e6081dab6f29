"""The DiT's invariants: KV-cache generation equals the parallel causal forward; a saved
package reloads to identical outputs (also with a larger position limit); it learns."""

from __future__ import annotations

import json

import pytest
import torch

from src.diffusion.flow_matching import FlowMatchingLoss, add_noise, sample_sigmas_logit_normal
from src.net.dit import VelodreamDiT
from src.net.presets import DIT_PRESETS, build_dit

SMALL = dict(
    hidden_dim=64,
    num_blocks=2,
    num_heads=2,
    patch_size=4,
    frames_per_framelet=2,
    window_framelets=3,
    max_grid_h=8,
    max_grid_w=8,
    stem_channels=8,
    refine_channels=8,
)


def randomized(model: VelodreamDiT, seed: int = 0) -> VelodreamDiT:
    """Perturb every weight so the zero-initialised (adaLN-Zero) branches do something."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


# the lighter block: one shared adaLN layer with per-block offsets, a rank-16 condition embedding
LIGHT = dict(modulation="shared", condition_rank=16)


def random_clip(b: int, t: int, h: int, w: int, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, 3, h, w, generator=generator)
    cond = torch.randn(b, t, 9, h, w, generator=generator)
    return x, cond, generator


def test_smooth_decoder_cannot_draw_the_patch_grid():
    """A token's features are one vector per patch. The patch decoder can paint each patch as
    a flat block (here: the head gives every pixel of a patch the same value), which is a
    patch grid; the smooth decoder interpolates token features bilinearly before any pixel is
    drawn, so the same per-token information leaves no grid. Conditions are zero so only the
    decoders draw structure."""
    from src.eval.metrics import seam_ratio

    x, cond, _ = random_clip(1, 2, 32, 32)
    cond = torch.zeros_like(cond)
    sigma = torch.full((1, 1), 0.5)
    p = SMALL["patch_size"]
    ratios = {}
    # the smooth decoder at full, half and quarter resolution (decoder_scale 1, 2, 4)
    for decoder, scale in (("patch", 1), ("smooth", 1), ("smooth", 2), ("smooth", 4)):
        torch.manual_seed(0)
        config = {**SMALL, "refine_channels": 0, "residual_condition_channels": None}
        model = randomized(VelodreamDiT(**config, decoder=decoder, decoder_scale=scale))
        with torch.no_grad():
            if decoder == "patch":  # rows c*p*p .. c*p*p + p*p - 1 paint one channel's block
                rows = torch.randn(model.head.weight.shape[0] // (p * p), 1, model.head.weight.shape[1])
                model.head.weight.copy_(rows.expand(-1, p * p, -1).reshape_as(model.head.weight))
                model.head.bias.zero_()
            else:
                model.head.weight.normal_(0, 0.5)
            ratios[decoder, scale] = seam_ratio(model(x, cond, sigma), grid=p)
    assert ratios["patch", 1] > 5.0
    assert ratios["smooth", 1] < 1.15
    assert ratios["smooth", 2] < 1.15
    assert ratios["smooth", 4] < 1.15


def test_unknown_decoder_is_refused():
    with pytest.raises(ValueError, match="decoder"):
        VelodreamDiT(**SMALL, decoder="transposed")


@pytest.mark.parametrize(
    "options",
    [
        dict(stem_scale=3),
        dict(stem_scale=4, patch_size=2),
        dict(decoder_scale=3, decoder="smooth"),
        dict(decoder_scale=2, decoder="patch"),
        dict(decoder_scale=8, decoder="smooth"),
    ],
)
def test_unusable_stem_and_decoder_scales_are_refused(options):
    with pytest.raises(ValueError, match="scale"):
        VelodreamDiT(**{**SMALL, **options})


# the reduced-resolution stem and decoder (issue 20): quarter-resolution stem, half-resolution
# smooth decoder fed by the full-resolution G-buffer
LOW_RES = dict(stem_scale=4, decoder="smooth", decoder_scale=2)


@pytest.mark.parametrize(
    ("residual", "options"),
    [
        ((0, 1, 2), {}),
        (None, {}),
        ((0, 1, 2), LOW_RES),
        (None, {**LOW_RES, "decoder_scale": 4}),
        ((0, 1, 2), LIGHT),
    ],
)
def test_kv_cache_generation_equals_parallel_forward(residual, options):
    torch.manual_seed(0)
    model = randomized(VelodreamDiT(**SMALL, residual_condition_channels=residual, **options))
    b, n, f, h, w = 2, 6, 2, 16, 20  # more framelets than the window: the cache rolls
    x, cond, generator = random_clip(b, n * f, h, w)
    sigma = torch.rand(b, n, generator=generator)
    with torch.no_grad():
        parallel = model(x, cond, sigma)
        cache = model.new_cache(b, h, w)
        outputs = []
        for i in range(n):
            frames = slice(i * f, (i + 1) * f)
            outputs.append(model.denoise_framelet(x[:, frames], cond[:, frames], sigma[:, i], cache))
            # the context enters as x itself at level sigma: its K/V are then computed from
            # exactly the input the parallel forward saw for this framelet
            model.push_context(x[:, frames], cond[:, frames], sigma[:, i], cache)
    assert cache.num_framelets == SMALL["window_framelets"] - 1
    assert (torch.cat(outputs, dim=1) - parallel).abs().max().item() <= 1e-4


def test_denoise_framelet_leaves_cache_untouched():
    model = randomized(VelodreamDiT(**SMALL))
    x, cond, _ = random_clip(1, 2, 8, 8)
    cache = model.new_cache(1, 8, 8)
    with torch.no_grad():
        model.push_context(x, cond, torch.tensor([0.1]), cache)
        keys = [k.clone() for k in cache.keys]
        model.denoise_framelet(x, cond, torch.tensor([0.7]), cache)
    assert cache.num_framelets == 1
    assert all(torch.equal(a, b) for a, b in zip(keys, cache.keys))


def test_causal_future_does_not_leak():
    model = randomized(VelodreamDiT(**SMALL))
    x, cond, _ = random_clip(1, 6, 8, 8)
    sigma = torch.full((1, 3), 0.5)
    with torch.no_grad():
        a = model(x, cond, sigma)
        x2 = x.clone()
        x2[:, 4:] += 1.0
        b = model(x2, cond, sigma)
    assert torch.equal(a[:, :4], b[:, :4])
    assert not torch.equal(a[:, 4:], b[:, 4:])


def test_save_and_load_roundtrip_and_larger_grid(tmp_path):
    model = randomized(VelodreamDiT(**SMALL))
    x, cond, _ = random_clip(1, 4, 16, 16)
    sigma = torch.tensor([[0.3, 0.8]])
    with torch.no_grad():
        expected = model(x, cond, sigma)
    model.save_pretrained(tmp_path / "pkg")
    loaded = VelodreamDiT.from_pretrained(tmp_path / "pkg").eval()
    with torch.no_grad():
        assert torch.equal(loaded(x, cond, sigma), expected)
    # fine-tune at a higher resolution: the position limits grow, the weights carry over
    with pytest.raises(ValueError, match="max_grid"):
        loaded(*random_clip(1, 4, 48, 16)[:2], sigma)
    bigger = VelodreamDiT.from_pretrained(tmp_path / "pkg", max_grid_h=16, max_grid_w=16).eval()
    assert bigger.config.max_grid_h == 16
    with torch.no_grad():
        assert torch.equal(bigger(x, cond, sigma), expected)
        assert bigger(*random_clip(1, 4, 48, 16)[:2], sigma).shape == (1, 4, 3, 48, 16)
    loaded.resize_positions(max_grid_h=16, max_grid_w=12)
    assert (loaded.config.max_grid_h, loaded.config.max_grid_w) == (16, 12)


def test_a_package_saved_before_the_scales_existed_loads_unchanged(tmp_path):
    """Packages written before ``stem_scale`` / ``decoder_scale`` / ``modulation`` /
    ``condition_rank`` lack them in config.json: they load as the half-resolution stem, the
    full-resolution decoder, a modulation layer per block and the full condition embedding, to
    the same outputs."""
    model = randomized(VelodreamDiT(**SMALL, decoder="smooth"))
    x, cond, _ = random_clip(1, 4, 16, 16)
    sigma = torch.tensor([[0.3, 0.8]])
    with torch.no_grad():
        expected = model(x, cond, sigma)
    model.save_pretrained(tmp_path / "pkg")
    config_path = tmp_path / "pkg" / "config.json"
    config = json.loads(config_path.read_text())
    del config["stem_scale"], config["decoder_scale"], config["modulation"], config["condition_rank"]
    config_path.write_text(json.dumps(config))
    loaded = VelodreamDiT.from_pretrained(tmp_path / "pkg").eval()
    assert (loaded.config.stem_scale, loaded.config.decoder_scale) == (2, 1)
    assert (loaded.config.modulation, loaded.config.condition_rank) == ("per_block", 0)
    with torch.no_grad():
        assert torch.equal(loaded(x, cond, sigma), expected)


def test_the_lighter_block_has_fewer_parameters_and_starts_at_the_identity():
    """The shared modulation keeps 6D offsets a block instead of a 6D x D layer, the rank-r
    condition embedding r (f C p p + D) weights instead of f C p p D; adaLN-Zero still holds."""
    full, light = VelodreamDiT(**SMALL), VelodreamDiT(**SMALL, **LIGHT)
    d, blocks, fcpp = SMALL["hidden_dim"], SMALL["num_blocks"], 2 * 9 * SMALL["patch_size"] ** 2
    saved = blocks * 6 * d * d - 6 * d * (d + 1) + (fcpp * d + d) - (fcpp * 16 + 16 + 16 * d + d)
    assert sum(p.numel() for p in full.parameters()) - sum(p.numel() for p in light.parameters()) == saved
    x, cond, _ = random_clip(1, 4, 16, 16)
    with torch.no_grad():
        plain = VelodreamDiT(
            **{**SMALL, "refine_channels": 0}, **LIGHT, residual_condition_channels=(0, 1, 2)
        )
        out = plain(x, cond, torch.tensor([[0.3, 0.8]]))
    assert torch.allclose(out, cond[:, :, :3])  # zero gates and head: the albedo residual alone


def test_presets_build_and_run():
    assert set(DIT_PRESETS) == {"tiny", "S", "B", "dit224"}
    model = build_dit("tiny", num_blocks=1)
    x, cond, _ = random_clip(1, 2, 64, 64)
    with torch.no_grad():
        out = model(x, cond, torch.tensor([[0.5]]))
    # adaLN-Zero + residual: an untrained model returns the albedo condition planes
    assert torch.allclose(out, cond[:, :, :3])


@pytest.mark.training
def test_loss_falls_on_a_fixed_batch():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster and robust on a shared machine
    try:
        first, last = train_on_a_fixed_batch(steps=250)
    finally:
        torch.set_num_threads(threads)
    assert last < first / 20, (first, last)


def test_the_low_resolution_stem_and_decoder_learn():
    """A few steps on a fixed batch: the loss falls, and the reduced-resolution stem and the
    decoder's G-buffer path (zero gradient while the decoder's last conv is zero) move."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = VelodreamDiT(**{**SMALL, **LOW_RES}, residual_condition_channels=None)
        stem_before = model.stem[1].weight.detach().clone()
        condition_before = model.decoder_condition.weight.detach().clone()
        first, last = train_on_a_fixed_batch(steps=30, model=model)
    finally:
        torch.set_num_threads(threads)
    assert last < first / 3, (first, last)
    assert not torch.equal(model.stem[1].weight, stem_before)
    assert not torch.equal(model.decoder_condition.weight, condition_before)


def train_on_a_fixed_batch(steps: int, model: VelodreamDiT | None = None) -> tuple[float, float]:
    torch.manual_seed(0)
    if model is None:
        model = VelodreamDiT(**SMALL, residual_condition_channels=None)
    generator = torch.Generator().manual_seed(0)
    b, t, h, w = 2, 4, 16, 16
    x0 = torch.rand(b, t, 3, h, w, generator=generator) * 2 - 1
    cond = torch.randn(b, t, 9, h, w, generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    sigma = sample_sigmas_logit_normal((b, t // 2), generator=generator)
    x_noisy = add_noise(x0, noise, sigma)
    loss_fn = FlowMatchingLoss(weighting="x0")
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(x_noisy, cond, sigma), x0, sigma)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


def test_gradient_checkpointing_gives_the_same_gradients():
    x, cond, _ = random_clip(1, 4, 8, 8)
    sigma = torch.tensor([[0.2, 0.9]])
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = randomized(VelodreamDiT(**SMALL)).train()
        if checkpointing:
            model.enable_gradient_checkpointing()
        model(x, cond, sigma).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
