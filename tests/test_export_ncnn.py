"""One denoiser step exported to ncnn with pnnx runs like torch (CPU; Vulkan when present),
with the KV cache as explicit inputs and outputs; unconverted ops fail the export."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from src.diffusion.flow_matching import add_noise
from src.net.dit import VelodreamDiT
from src.net.export_step import FrameletStep
from src.runtime.ncnn_backend import NcnnNet
from src.runtime.ncnn_export import ExportError, export_step_ncnn, run_pnnx, unconverted_layers
from tests.test_net_dit import SMALL, randomized

ncnn = pytest.importorskip("ncnn")

H = W = 16
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 5e-2  # fp16 storage + arithmetic on lavapipe; measured ~1e-2


# each decoder (patch unshuffle; bilinear features + convolutions at full resolution; the same at
# half resolution with a quarter-resolution stem, issue 20's reduced-resolution option)
DECODERS = {
    "patch": dict(decoder="patch"),
    "smooth": dict(decoder="smooth"),
    "smooth_half": dict(decoder="smooth", decoder_scale=2, stem_scale=4),
}


@pytest.fixture(scope="module", params=list(DECODERS))
def exported(request, tmp_path_factory):
    torch.manual_seed(0)
    model = randomized(VelodreamDiT(**{**SMALL, **DECODERS[request.param]}))
    paths = export_step_ncnn(model, tmp_path_factory.mktemp("ncnn"), H, W)
    return model, paths


def ride_inputs(num_framelets: int, h: int = H, w: int = W):
    generator = torch.Generator().manual_seed(5)
    frames = torch.randn(num_framelets, 1, 2, 3, h, w, generator=generator)
    conds = torch.randn(num_framelets, 1, 2, 9, h, w, generator=generator)
    noise = torch.randn(num_framelets, 1, 2, 3, h, w, generator=generator)
    return frames, conds, noise


def step_runner(paths, **options) -> NcnnNet:
    return NcnnNet(paths["param"], paths["bin"], num_inputs=6, num_outputs=3, **options)


def flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(1, -1, *x.shape[-2:])  # 1 f c h w -> 1 (f c) h w


@pytest.mark.slow
def test_ncnn_cpu_step_matches_torch_cache_over_a_ride(exported):
    """Framelet by framelet, past the window: denoise, then push the result as context at
    context_sigma. The ncnn graph with the fixed-size cache + bias equals the eager cache."""
    check_ride(*exported, H, W, num_framelets=4)


@pytest.mark.slow
@pytest.mark.parametrize("scales", [dict(decoder_scale=2, stem_scale=4), dict(decoder_scale=4, stem_scale=4)])
def test_ncnn_cpu_matches_torch_at_224_with_the_reduced_resolution_stem_and_decoder(scales, tmp_path):
    """At the play resolution (patch 16: 14 x 14 tokens), over a ride that fills the window."""
    torch.manual_seed(0)
    config = {**SMALL, "patch_size": 16, "max_grid_h": 14, "max_grid_w": 14, "decoder": "smooth", **scales}
    model = randomized(VelodreamDiT(**config))
    paths = export_step_ncnn(model, tmp_path, 224, 224)
    check_ride(model, paths, 224, 224, num_framelets=3)


def check_ride(model: VelodreamDiT, paths: dict, h: int, w: int, *, num_framelets: int) -> None:
    runner = step_runner(paths)
    step = FrameletStep(model, h, w)
    frames, conds, noise = ride_inputs(num_framelets, h, w)
    sigma, sigma_ctx = torch.tensor([0.7]), torch.tensor([0.1])
    cache = model.new_cache(1, h, w)
    past_k, past_v, bias = step.empty_inputs()
    with torch.no_grad():
        for x, cond, eps in zip(frames, conds, noise):
            expected = model.denoise_framelet(x, cond, sigma, cache)
            x0, _, _ = runner(flat(x), flat(cond), sigma[:, None], past_k, past_v, bias)
            assert (x0 - flat(expected)).abs().max().item() <= FP32_TOLERANCE
            x_ctx = add_noise(expected, eps, sigma_ctx)
            model.push_context(x_ctx, cond, sigma_ctx, cache)
            _, new_k, new_v = runner(flat(x_ctx), flat(cond), sigma_ctx[:, None], past_k, past_v, bias)
            past_k, bias_next = FrameletStep.roll(past_k, new_k, bias)
            past_v, _ = FrameletStep.roll(past_v, new_v, bias)
            bias = bias_next
            cache_k, cache_v, cache_bias = cache.export_tensors()
            assert torch.equal(bias, cache_bias)
            assert (past_k - cache_k).abs().max().item() <= FP32_TOLERANCE
            assert (past_v - cache_v).abs().max().item() <= FP32_TOLERANCE


def step_inputs(model: VelodreamDiT):
    frames, conds, noise = ride_inputs(2)
    cache = model.new_cache(1, H, W)
    with torch.no_grad():
        model.push_context(
            add_noise(frames[0], noise[0], torch.tensor([0.1])), conds[0], torch.tensor([0.1]), cache
        )
        expected = model.denoise_framelet(frames[1], conds[1], torch.tensor([0.6]), cache)
    past_k, past_v, bias = cache.export_tensors()  # one of two slots filled: the bias masks one
    return (flat(frames[1]), flat(conds[1]), torch.tensor([[0.6]]), past_k, past_v, bias), flat(expected)


@pytest.mark.vulkan
@pytest.mark.skipif(ncnn.get_gpu_count() == 0, reason="no Vulkan device (install mesa-vulkan-drivers)")
@pytest.mark.parametrize(("fp16", "tolerance"), [(False, FP32_TOLERANCE), (True, FP16_TOLERANCE)])
def test_ncnn_vulkan_step_matches_torch(exported, fp16, tolerance):
    model, paths = exported
    inputs, expected = step_inputs(model)
    runner = step_runner(paths, use_vulkan=True, fp16=fp16)
    x0, new_k, _ = runner(*inputs)
    assert (x0 - expected).abs().max().item() <= tolerance
    with torch.no_grad():
        _, torch_k, _ = FrameletStep(model, H, W)(*inputs)
    assert (new_k - torch_k).abs().max().item() <= tolerance


def test_unconverted_layer_types_are_found(tmp_path):
    param = tmp_path / "m.ncnn.param"
    param.write_text(
        "7767517\n4 4\nInput in0 0 1 in0\nTensor.reshape r 1 1 in0 a 0=1\n"
        "torch.view_as_complex c 1 1 a b\nSDPA s 1 1 b out0\n"
    )
    assert unconverted_layers(param) == ["Tensor.reshape (r)", "torch.view_as_complex (c)"]


class ComplexRope(nn.Module):
    """The complex-number RoPE form (``view_as_complex``), which pnnx cannot convert."""

    def forward(self, x):
        rotation = torch.polar(torch.ones(8, 4), torch.arange(32.0).reshape(8, 4))
        rotated = torch.view_as_complex(x.reshape(1, 8, 4, 2)) * rotation
        return torch.view_as_real(rotated).reshape(1, 8, 8)


@pytest.mark.slow
def test_export_fails_loudly_on_unconverted_ops(tmp_path):
    with pytest.raises(ExportError, match="view_as_complex"):
        run_pnnx(ComplexRope(), [torch.randn(1, 8, 8)], tmp_path, "complex_rope")
