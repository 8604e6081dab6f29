"""Flow-matching maths: noising, schedules, the sampler and the loss."""

from __future__ import annotations

import math

import torch

from src.diffusion.flow_matching import (
    FlowMatchingLoss,
    add_noise,
    euler_sample,
    expand_sigma,
    make_sigmas,
    resolution_shift,
    sample_sigmas_logit_normal,
    time_shift,
)


def test_add_noise_per_framelet():
    x0 = torch.ones(2, 4, 3, 2, 2)
    noise = torch.zeros_like(x0)
    sigma = torch.tensor([[0.0, 1.0], [0.25, 0.5]])  # b n, 2 frames per framelet
    x = add_noise(x0, noise, sigma)
    assert torch.allclose(x[0, :2], torch.ones(2, 3, 2, 2)) and torch.allclose(
        x[0, 2:], torch.zeros(2, 3, 2, 2)
    )
    assert torch.allclose(x[1, :2], torch.full((2, 3, 2, 2), 0.75))
    assert torch.allclose(x[1, 2:], torch.full((2, 3, 2, 2), 0.5))
    assert expand_sigma(torch.tensor([0.5, 0.1]), x0).shape == (2, 1, 1, 1, 1)


def test_sigma_sampling_and_shift():
    generator = torch.Generator().manual_seed(0)
    sigma = sample_sigmas_logit_normal((4000, 3), generator=generator)
    assert sigma.shape == (4000, 3) and 0 < sigma.min() and sigma.max() < 1
    assert abs(sigma.median().item() - 0.5) < 0.03
    assert time_shift(0.0, 3.0) == 0.0 and time_shift(1.0, 3.0) == 1.0
    assert time_shift(0.5, 3.0) > 0.5
    assert resolution_shift(64 * 64) == 1.0
    assert math.isclose(resolution_shift(128 * 128), 2.0)


def test_make_sigmas_ends_at_zero():
    sigmas = make_sigmas(4, shift=2.0)
    assert sigmas.shape == (5,) and sigmas[0] == 1.0 and sigmas[-1] == 0.0
    assert torch.all(sigmas[1:] < sigmas[:-1])
    assert torch.allclose(make_sigmas(2), torch.tensor([1.0, 0.5, 0.0]))


def test_euler_sampler_with_a_perfect_denoiser():
    """A single target point: the exact x0 denoiser lands on it, every step on the straight path."""
    target = torch.randn(2, 2, 3, 4, 4)
    noise = torch.randn_like(target)
    seen = []

    def denoiser(x, sigma, step):
        assert sigma.shape == (2,) and step == len(seen)
        return target

    out = euler_sample(denoiser, noise, make_sigmas(3), callback=lambda i, x, x0: seen.append(x))
    assert torch.allclose(out, target)
    # the state at step i is x_sigma = (1 - sigma) target + sigma noise
    assert torch.allclose(seen[1], add_noise(target, noise, make_sigmas(3)[1]), atol=1e-6)


def test_loss_weightings():
    x0 = torch.zeros(1, 4, 3, 2, 2)
    pred = torch.ones_like(x0)
    sigma = torch.tensor([[0.5, 0.01]])
    assert torch.isclose(FlowMatchingLoss(weighting="x0")(pred, x0, sigma), torch.tensor(1.0))
    velocity = FlowMatchingLoss()(pred, x0, sigma)  # weights 1/0.25 and 1/0.05^2 (clipped)
    assert torch.isclose(velocity, torch.tensor((4.0 + 400.0) / 2))
    only_last = FlowMatchingLoss()(pred, x0, sigma, framelet_weight=torch.tensor([[0.0, 1.0]]))
    assert torch.isclose(only_last, torch.tensor(400.0))


def test_rollout_is_reproducible_and_uses_the_cache():
    from src.diffusion.rollout import rollout_framelets
    from src.net.dit import VelodreamDiT
    from tests.test_net_dit import SMALL, randomized

    model = randomized(VelodreamDiT(**SMALL))
    cond = torch.randn(1, 6, 9, 8, 8, generator=torch.Generator().manual_seed(0))

    def run(seed, cache=None):
        generator = torch.Generator().manual_seed(seed)
        return rollout_framelets(
            model, cond, frames_per_framelet=2, sigmas=make_sigmas(2), generator=generator, cache=cache
        )

    a, b = run(1), run(1)
    assert a.shape == (1, 6, 3, 8, 8) and torch.equal(a, b)
    cache = model.new_cache(1, 8, 8)
    run(1, cache)
    assert cache.num_framelets == SMALL["window_framelets"] - 1


def test_noise_for_a_model_on_the_generators_device_is_the_generators_own_draw():
    from src.diffusion.flow_matching import randn_like_on

    like = torch.zeros(2, dtype=torch.float64)
    noise = randn_like_on((3, 4), generator=torch.Generator().manual_seed(5), like=like)
    assert noise.dtype == torch.float64
    assert torch.equal(
        noise, torch.randn(3, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    )
    # a function of the generator's state: the same seed, the same noise; the state moves on
    generator = torch.Generator().manual_seed(5)
    first = randn_like_on((3, 4), generator=generator, like=like)
    assert torch.equal(first, noise) and not torch.equal(
        randn_like_on((3, 4), generator=generator, like=like), noise
    )
