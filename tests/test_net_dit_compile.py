"""torch.compile takes the DiT whole: the training step (forward + loss) and the sampling step
(one framelet against the cache) trace with zero graph breaks, and a compiled ride over a
fixed-size cache runs on one graph from the empty cache on, giving the eager frames."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo

from src.diffusion.flow_matching import FlowMatchingLoss, add_noise, make_sigmas
from src.diffusion.rollout import sample_framelet
from src.net.dit import VelodreamDiT

TINY = dict(
    hidden_dim=32,
    num_blocks=2,
    num_heads=2,
    patch_size=4,
    window_framelets=3,
    max_grid_h=4,
    max_grid_w=4,
    stem_channels=8,
    refine_channels=8,
)


def tiny_model() -> VelodreamDiT:
    torch.manual_seed(0)
    model = VelodreamDiT(**TINY)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


@pytest.mark.training
@pytest.mark.slow  # dynamo traces the whole model: ~10-20 s on 2 cores
def test_training_step_has_no_graph_break():
    model = tiny_model().train()
    loss_fn = FlowMatchingLoss()
    x0, cond = torch.randn(1, 6, 3, 8, 8), torch.randn(1, 6, 9, 8, 8)
    sigma, noise = torch.rand(1, 3), torch.randn(1, 6, 3, 8, 8)

    def training_step(x0, cond, sigma, noise):
        return loss_fn(model(add_noise(x0, noise, sigma), cond, sigma), x0, sigma)

    explained = torch._dynamo.explain(training_step)(x0, cond, sigma, noise)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


def ride(model, num_framelets: int = 4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(2)
    cache = model.new_cache(1, 8, 8)
    frames = []
    with torch.no_grad():
        for _ in range(num_framelets):
            noise = torch.randn(1, 2, 3, 8, 8, generator=generator)
            cond = torch.randn(1, 2, 9, 8, 8, generator=generator)
            x, _ = sample_framelet(
                model,
                noise,
                cond,
                cache,
                sigmas=make_sigmas(2),
                context_sigma=0.1,
                context_from_last_step=True,
            )
            frames.append(x)
    return torch.cat(frames, dim=1)


@pytest.mark.slow
def test_sampling_step_has_no_graph_break_and_one_shape_per_ride():
    model = tiny_model()
    eager = ride(model)
    model.static_cache = True
    cache = model.new_cache(1, 8, 8)
    x, cond = torch.randn(1, 2, 3, 8, 8), torch.randn(1, 2, 9, 8, 8)
    with torch.no_grad():
        explained = torch._dynamo.explain(model.denoise_framelet)(x, cond, torch.tensor([0.5]), cache)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1
    torch._dynamo.reset()
    model.compile_inference(backend="eager")  # dynamo's graph capture, without code generation
    with torch._dynamo.config.patch(error_on_recompile=True):  # the empty and the full cache share a graph
        compiled = ride(model)
    assert (compiled - eager).abs().max().item() < 1e-5
