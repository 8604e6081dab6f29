"""The torch and ncnn backends render the same frames from the same package and seed.

Tolerances (documented in the README): ncnn CPU fp32 within 1e-4 of torch; ncnn Vulkan fp32
(lavapipe in CI) within 1e-4; Vulkan fp16 storage within 2e-2. Seen on the 2-core machine:
1.8e-6, 7.7e-7 and 3.8e-3. The rollout covers four
framelets, so the rolling KV cache (empty, filling, full and rolling) is part of the check.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from src.conditions.encode import ConditionStats
from src.conditions.spec import ConditionSpec
from src.net.presets import build_dit
from src.runtime.backends import make_renderer
from src.runtime.package import SamplingDefaults, load_package, write_package

H, W = 16, 24


def _tiny_package(tmp_path_factory, name: str, **block):
    torch.manual_seed(0)
    model = build_dit(
        "tiny",
        hidden_dim=32,
        num_blocks=2,
        num_heads=2,
        stem_channels=8,
        refine_channels=8,
        window_framelets=3,
        **block,
    )
    with torch.no_grad():  # adaLN-Zero starts at the identity: give every weight a value
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    directory = tmp_path_factory.mktemp("pkg") / name
    write_package(
        directory,
        model=model,
        spec=ConditionSpec(),
        stats=ConditionStats(),
        width=W,
        height=H,
        fps=10,
        sampling=SamplingDefaults(num_denoising_steps=2, context_sigma=0.05, shift=1.0),
        readme="# test\n",
        card={},
    )
    return directory


@pytest.fixture(scope="module")
def tiny_package(tmp_path_factory):
    return _tiny_package(tmp_path_factory, "tiny")


@pytest.fixture(scope="module")
def light_package(tmp_path_factory):
    """The lighter block: one shared adaLN layer with per-block offsets, a rank-8 condition embedding."""
    return _tiny_package(tmp_path_factory, "light", modulation="shared", condition_rank=8)


def rollout(package_dir, backend, device="cpu", dtype="float32", framelets=4, context_from_last_step=False):
    package = load_package(package_dir)
    package.sampling.context_from_last_step = context_from_last_step
    runner = make_renderer(
        package, backend=backend, height=H, width=W, num_denoising_steps=2, device=device, dtype=dtype, seed=3
    )
    generator = torch.Generator().manual_seed(1)
    conds = [torch.rand(2, 9, H, W, generator=generator) * 2 - 1 for _ in range(framelets)]
    return np.stack([runner.step(cond) for cond in conds])


@pytest.mark.slow
def test_the_lighter_block_exports_to_ncnn_like_torch(light_package):
    reference = rollout(light_package, "torch")
    assert reference.std() > 0.05
    assert np.abs(rollout(light_package, "ncnn", device="cpu") - reference).max() < 1e-4


@pytest.mark.slow
def test_ncnn_cpu_matches_torch(tiny_package):
    reference = rollout(tiny_package, "torch")
    assert reference.std() > 0.05  # the frames are not trivially constant
    ncnn_frames = rollout(tiny_package, "ncnn", device="cpu")
    assert np.abs(ncnn_frames - reference).max() < 1e-4
    assert (tiny_package / "ncnn" / f"{W}x{H}" / "framelet_step.ncnn.param").is_file()  # kept in the package


@pytest.mark.slow
def test_context_from_the_last_step_matches_in_ncnn_and_saves_the_context_pass(tiny_package):
    """A distilled package's sampling: the last denoising pass's keys/values are the context."""
    reference = rollout(tiny_package, "torch", context_from_last_step=True)
    assert np.abs(reference - rollout(tiny_package, "torch")).max() > 1e-3  # another context, other frames
    assert np.abs(rollout(tiny_package, "ncnn", context_from_last_step=True) - reference).max() < 1e-4
    package = load_package(tiny_package)
    package.sampling.context_from_last_step = True
    assert make_renderer(package, height=H, width=W, num_denoising_steps=2).passes_per_step == 2


@pytest.mark.vulkan
def test_ncnn_vulkan_matches_torch(tiny_package):
    import ncnn

    if ncnn.get_gpu_count() == 0:
        assert not os.environ.get("CI"), "CI must have a Vulkan device: .ci/run installs mesa-vulkan-drivers"
        pytest.skip("no Vulkan device here (install libvulkan1 mesa-vulkan-drivers for lavapipe)")
    reference = rollout(tiny_package, "torch", framelets=2)
    fp32 = rollout(tiny_package, "ncnn", device="vulkan", framelets=2)
    assert np.abs(fp32 - reference).max() < 1e-4
    fp16 = rollout(tiny_package, "ncnn", device="vulkan", dtype="float16", framelets=2)
    assert np.abs(fp16 - reference).max() < 2e-2


def test_unknown_backend_and_missing_vulkan_are_clear_errors(tiny_package, monkeypatch):
    from src.common.errors import UserError

    package = load_package(tiny_package)
    with pytest.raises(UserError, match="unknown backend"):
        make_renderer(package, backend="onnx", height=H, width=W, num_denoising_steps=1)
    import ncnn

    monkeypatch.setattr(ncnn, "get_gpu_count", lambda: 0)
    with pytest.raises(UserError, match="Vulkan"):
        make_renderer(package, backend="ncnn", height=H, width=W, num_denoising_steps=1, device="vulkan")


@pytest.mark.slow
def test_an_export_killed_half_way_is_never_taken_for_a_finished_one(tiny_package, tmp_path):
    """SIGKILL the process (and its pnnx child) while the export is being written: the export
    folder must not exist afterwards, and the next run exports again and renders like torch."""
    import shutil
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    package_dir = tmp_path / "pkg"
    shutil.copytree(tiny_package, package_dir, ignore=shutil.ignore_patterns("ncnn"))
    export_dir = package_dir / "ncnn" / f"{W}x{H}"
    script = (
        "from src.runtime.package import load_package\n"
        "from src.runtime.backends import make_renderer\n"
        f"make_renderer(load_package({str(package_dir)!r}), backend='ncnn', height={H}, width={W})\n"
    )
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=root,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    staging = []
    while time.monotonic() < deadline and process.poll() is None:
        staging = (
            [p for p in (package_dir / "ncnn").glob(".*.tmp") if any(p.iterdir())]
            if (package_dir / "ncnn").is_dir()
            else []
        )
        if staging:
            break
        time.sleep(0.05)
    assert staging, "the export never started writing (or finished before it could be killed)"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert not export_dir.exists()
    assert (
        np.abs(rollout(package_dir, "ncnn", framelets=2) - rollout(package_dir, "torch", framelets=2)).max()
        < 1e-4
    )
    assert (export_dir / "framelet_step.ncnn.param").is_file()
