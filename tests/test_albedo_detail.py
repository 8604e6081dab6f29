"""A renderer whose frames lack the finest detail (a student that upscales, a DiT whose decoder
runs at half size) gets that band of the albedo back (``sampling.albedo_detail``): exactly that
band, only where it is asked for and the conditions come at the frame size, the same in torch and
ONNX Runtime."""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F

from src.conditions.encode import ConditionStats
from src.conditions.spec import ConditionSpec
from src.runtime.backends import make_renderer
from src.runtime.package import SamplingDefaults, load_package, write_package
from src.runtime.renderer import render_clip
from tests.test_student import random_student

H, W = 32, 48  # the frame size; the conditions the model reads are 16x24


def _write(directory, model, **sampling):
    write_package(
        directory,
        model=model,
        spec=ConditionSpec(),
        stats=ConditionStats(),
        width=W,
        height=H,
        fps=10,
        sampling=SamplingDefaults(num_denoising_steps=1, **sampling),
        readme="# test\n",
        card={},
    )
    return load_package(directory)


def _package(directory, albedo_detail: float):
    return _write(directory, random_student(upscale=2), albedo_detail=albedo_detail)


def _conditions(frames: int = 4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    cond = torch.rand(frames, 9, H, W, generator=generator) * 2 - 1
    cond[:, 7:9] *= 0.3
    return cond


def test_the_detail_band_is_added_at_the_frame_size_and_nothing_else_changes(tmp_path):
    cond = _conditions()
    plain = render_clip(make_renderer(_package(tmp_path / "plain", 0.0), backend="torch"), cond, seed=0)
    renderer = make_renderer(_package(tmp_path / "detail", 1.0), backend="torch")
    detailed = render_clip(renderer, cond, seed=0)
    albedo = cond[:, :3]
    band = albedo - F.interpolate(
        F.avg_pool2d(albedo, 2), scale_factor=2, mode="bilinear", align_corners=False
    )
    assert band.abs().max() > 0.3  # random albedo has plenty of detail above the half size
    expected = np.clip(plain + band.numpy(), -1, 1)
    assert np.abs(detailed - expected).max() < 1e-5
    # conditions handed at the condition size carry no detail: the frames are the plain ones
    half = F.avg_pool2d(cond, 2)
    assert np.abs(render_clip(renderer, half, seed=0) - render_clip(make_renderer(
        _package(tmp_path / "plain2", 0.0), backend="torch"), half, seed=0)).max() < 1e-6  # fmt: skip


def test_a_package_written_before_the_setting_loads_with_it_off(tmp_path):
    _package(tmp_path / "p", 1.0)
    meta_path = tmp_path / "p" / "conditions.json"
    meta = json.loads(meta_path.read_text())
    assert meta["sampling"].pop("albedo_detail") == 1.0
    meta_path.write_text(json.dumps(meta))
    assert load_package(tmp_path / "p").sampling.albedo_detail == 0.0


def _dit_package(directory, albedo_detail: float, **decoder):
    from src.net.presets import build_dit

    torch.manual_seed(0)
    model = build_dit("tiny", hidden_dim=32, num_blocks=1, num_heads=2, stem_channels=0, **decoder)
    return _write(directory, model, context_from_last_step=True, albedo_detail=albedo_detail)


def test_a_dit_with_a_half_size_decoder_gets_the_band_and_one_with_a_full_size_decoder_none(tmp_path):
    cond = _conditions()
    half = dict(decoder="smooth", decoder_scale=2)
    plain = render_clip(make_renderer(_dit_package(tmp_path / "plain", 0.0, **half)), cond, seed=0)
    renderer = make_renderer(_dit_package(tmp_path / "detail", 0.5, **half))
    assert renderer.detail_scale == 2 and renderer.gbuffer_size == (W, H)
    albedo = cond[:, :3]
    band = albedo - F.interpolate(
        F.avg_pool2d(albedo, 2), scale_factor=2, mode="bilinear", align_corners=False
    )
    expected = np.clip(plain + 0.5 * band.numpy(), -1, 1)
    assert np.abs(render_clip(renderer, cond, seed=0) - expected).max() < 1e-5
    # a decoder at the full size loses no detail: the setting adds nothing
    full = make_renderer(_dit_package(tmp_path / "full", 0.5, decoder="smooth", decoder_scale=1))
    assert full.albedo_detail == 0.0
    unset = make_renderer(_dit_package(tmp_path / "full0", 0.0, decoder="smooth", decoder_scale=1))
    assert np.array_equal(render_clip(full, cond, seed=0), render_clip(unset, cond, seed=0))
