"""The ONNX Runtime backend renders the frames torch renders, for every model kind.

Parity over a 4-framelet rollout on the CPU (the DiT's rolling cache empty, filling, full and
rolling; the student's fed-back frame and ConvGRU state), asserted at 1e-4 like ncnn's. Seen on
the 2-core machine: 7.2e-7 (DiT) and 4.2e-7 (student). The export is kept in the package
(``onnx/<W>x<H>/``), made again when a file of it is damaged, and the session has the thread
count asked for.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from src.conditions.encode import ConditionStats
from src.conditions.spec import ConditionSpec
from src.net.flat_color import FlatColorRenderer
from src.runtime.backends import make_renderer
from src.runtime.package import SamplingDefaults, load_package, write_package
from src.runtime.renderer import render_clip
from tests import test_runtime_parity as dit_parity
from tests import test_student as student_parity
from tests.test_runtime_parity import tiny_package  # noqa: F401 (the DiT package fixture)
from tests.test_student import student_package  # noqa: F401 (the student package fixture)

pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_the_dit_rollout_matches_torch_through_its_rolling_cache(tiny_package):  # noqa: F811
    reference = dit_parity.rollout(tiny_package, "torch")
    assert reference.std() > 0.05  # the frames are not trivially constant
    frames = dit_parity.rollout(tiny_package, "onnxruntime")
    assert np.abs(frames - reference).max() < 1e-4
    assert np.abs(frames[-1] - frames[0]).max() > 1e-2  # four different framelets, not one repeated
    W, H = dit_parity.W, dit_parity.H
    assert (tiny_package / "onnx" / f"{W}x{H}" / "framelet_step.onnx").is_file()  # kept in the package
    last_step = dit_parity.rollout(tiny_package, "onnxruntime", context_from_last_step=True)
    assert (
        np.abs(last_step - dit_parity.rollout(tiny_package, "torch", context_from_last_step=True)).max()
        < 1e-4
    )


def test_the_student_rollout_matches_torch(student_package):  # noqa: F811
    reference = student_parity.rollout(student_package, "torch")
    assert reference.std() > 0.05
    assert np.abs(student_parity.rollout(student_package, "onnxruntime") - reference).max() < 1e-4


def test_the_flat_baseline_runs_like_torch(tmp_path):
    directory = tmp_path / "flat"
    write_package(
        directory,
        model=FlatColorRenderer(),
        spec=ConditionSpec(),
        stats=ConditionStats(),
        width=24,
        height=16,
        fps=10,
        sampling=SamplingDefaults(num_denoising_steps=1),
        readme="# test\n",
        card={},
    )
    cond = torch.rand(3, 9, 16, 24) * 2 - 1
    package = load_package(directory)
    frames = render_clip(make_renderer(package, backend="onnxruntime"), cond)
    np.testing.assert_allclose(frames, render_clip(make_renderer(package, backend="torch"), cond), atol=1e-6)
    np.testing.assert_allclose(frames, cond[:, :3].numpy(), atol=1e-6)  # the albedo planes


def test_a_damaged_export_is_made_again_and_the_session_has_the_threads_asked_for(student_package):  # noqa: F811
    W, H = student_parity.W, student_parity.H
    package = load_package(student_package)
    make_renderer(package, backend="onnxruntime")
    onnx_file = student_package / "onnx" / f"{W}x{H}" / "recurrent_step.onnx"
    whole = onnx_file.read_bytes()
    onnx_file.write_bytes(whole[: len(whole) // 2])  # a truncated copy
    threads = torch.get_num_threads()
    try:
        renderer = make_renderer(package, backend="onnxruntime", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert onnx_file.read_bytes() == whole  # exported again, to the same bytes
    assert renderer.runner.net.session.get_session_options().intra_op_num_threads == 1


def test_a_gpu_without_onnxruntimes_gpu_providers_is_one_clear_error(student_package):  # noqa: F811
    import onnxruntime

    from src.common.errors import UserError

    if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(onnxruntime.get_available_providers()):
        pytest.skip("this onnxruntime has a GPU provider")
    with pytest.raises(UserError, match="onnxruntime-gpu"):
        make_renderer(load_package(student_package), backend="onnxruntime", device="cuda")
    with pytest.raises(UserError, match="unknown device 'vulkan'"):
        make_renderer(load_package(student_package), backend="onnxruntime", device="vulkan")
