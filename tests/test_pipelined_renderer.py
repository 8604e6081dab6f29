"""The pipelined play path (``PipelinedRenderer``): the model one frame behind the game in a worker
thread gives exactly the frames the in-order path gives, every one, in order, one push late; a
reset drops the frame in flight, and the worker's error reaches the caller. Also: a step split
into ``prepare`` (the caller's thread) and ``step_prepared`` (the worker) is the whole step, and
the faster area average is avg_pool2d bit for bit."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from src.common.gbuffer import GBuffer
from src.conditions.encode import downsample_encoded
from src.play.neural import NeuralRenderer, NeuralWorker, PipelinedRenderer
from src.runtime.backends import make_renderer
from tests.test_albedo_detail import H, W, _package


def _gbuffers(count: int, seed: int = 0) -> list[GBuffer]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        out.append(
            GBuffer(
                color=rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
                depth=rng.uniform(2.0, 80.0, (H, W)).astype(np.float32),
                flow=rng.normal(0.0, 1.5, (H, W, 2)).astype(np.float32),
                normals=np.dstack([np.zeros((H, W, 2)), np.ones((H, W, 1))]).astype(np.float32),
                albedo=rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
            )
        )
    return out


def _neural(tmp_path, name: str) -> NeuralRenderer:
    package = _package(tmp_path / name, 1.0)  # an upscaling student that adds the albedo detail band
    return NeuralRenderer(package, make_renderer(package, backend="torch", width=W, height=H, seed=0))


def test_pipelined_frames_are_the_in_order_frames_one_push_late(tmp_path):
    gbuffers = _gbuffers(6)
    plain = _neural(tmp_path, "a")
    expected = [plain.push(g) for g in gbuffers]
    assert expected[0].std() > 1.0  # the frames are not trivially constant
    pipeline = PipelinedRenderer(_neural(tmp_path, "b"))
    try:
        got = [pipeline.push(g, tag=i) for i, g in enumerate(gbuffers)]
        got.append(pipeline.flush())
    finally:
        pipeline.close()
    assert got[0] == (None, None)  # the first push has nothing to show yet
    for i, (frames, tag) in enumerate(got[1:]):
        assert tag == i
        np.testing.assert_array_equal(frames, expected[i])
    assert pipeline.model_ms > 0 and pipeline.encode_ms > 0


def test_reset_drops_the_frame_in_flight_and_starts_a_new_ride(tmp_path):
    gbuffers = _gbuffers(4, seed=1)
    fresh = _neural(tmp_path, "a")
    first_of_a_ride = fresh.push(gbuffers[2])
    pipeline = PipelinedRenderer(_neural(tmp_path, "b"))
    try:
        pipeline.push(gbuffers[0])
        pipeline.push(gbuffers[1])
        pipeline.reset()  # gbuffers[1]'s frame is dropped, the recurrent state forgotten
        assert pipeline.push(gbuffers[2]) == (None, None)
        frames, _ = pipeline.flush()
    finally:
        pipeline.close()
    np.testing.assert_array_equal(frames, first_of_a_ride)


def test_the_workers_error_reaches_the_caller(tmp_path):
    neural = _neural(tmp_path, "a")

    def broken(*inputs):
        raise RuntimeError("the model failed")

    neural.renderer.step_prepared = broken
    pipeline = PipelinedRenderer(neural)
    try:
        pipeline.push(_gbuffers(1)[0])
        with pytest.raises(RuntimeError, match="the model failed"):
            pipeline.flush()
    finally:
        pipeline.close()


def _next_frame(worker: NeuralWorker, previous_count: int) -> np.ndarray:
    """Wait (up to 20 s) for the worker's frame count to pass ``previous_count``; its newest frame."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert worker.error is None
        with worker._lock:
            if len(worker._frame_times) > previous_count:
                return worker._latest
        time.sleep(0.01)
    raise AssertionError("the worker made no frame in 20 s")


def test_the_windows_worker_encodes_in_the_callers_thread_and_renders_in_its_own(tmp_path):
    """The window's ``NeuralWorker``: its frame is the in-order frame, and a new ride id gives a
    fresh ride's first frame (the encode half reset by the caller, the model's by the worker)."""
    gbuffers = _gbuffers(3, seed=2)
    reference = _neural(tmp_path, "a")
    first = reference.push(gbuffers[0])[-1]
    reference.reset()
    fresh_first = reference.push(gbuffers[2])[-1]
    worker = NeuralWorker(_neural(tmp_path, "b"))
    try:
        worker.submit(gbuffers[0], ride_id=0)
        np.testing.assert_array_equal(_next_frame(worker, 0), first)
        worker.submit(gbuffers[1], ride_id=0)
        _next_frame(worker, 1)
        worker.submit(gbuffers[2], ride_id=1)  # the game restarted
        np.testing.assert_array_equal(_next_frame(worker, 2), fresh_first)
        assert worker.renderer.times.encode_ms and worker.latest()[1] > 0
    finally:
        worker.close()


def test_prepare_then_step_prepared_is_the_step(tmp_path):
    cond = torch.rand(1, 9, H, W, generator=torch.Generator().manual_seed(2)) * 2 - 1
    one = make_renderer(_package(tmp_path / "a", 1.0), backend="torch", width=W, height=H, seed=0)
    two = make_renderer(_package(tmp_path / "b", 1.0), backend="torch", width=W, height=H, seed=0)
    assert one.gbuffer_size == (W, H)  # the detail band needs the full-size albedo
    assert make_renderer(_package(tmp_path / "c", 0.0), backend="torch").gbuffer_size == (W // 2, H // 2)
    inputs = two.prepare(cond)
    assert inputs[1] is not None  # the detail band, made before the network
    np.testing.assert_array_equal(one.step(cond), two.step_prepared(*inputs))


@pytest.mark.parametrize("shape", [(9, 32, 48), (2, 9, 30, 24), (1, 2, 3, 12, 18), (9, 33, 48)])
@pytest.mark.parametrize("factor", [2, 3])
def test_the_area_average_is_avg_pool2d_bit_for_bit(shape, factor):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(4)) * 3
    reference = torch.nn.functional.avg_pool2d(x.reshape(-1, *x.shape[-3:]), factor)
    reference = reference.reshape(*x.shape[:-3], *reference.shape[-3:])
    assert torch.equal(downsample_encoded(x, factor), reference)


@pytest.mark.slow
def test_play_renders_the_gbuffers_at_the_size_the_student_reads(tmp_path):
    """A package whose one renderer upscales without the detail band gets half-size G-buffers;
    its frames, the side-by-side view and the window stay at the frame size."""
    from src.common.gbuffer_io import load_gbuffer_clip
    from src.common.video import read_video_frames
    from src.play.config import RideConfig
    from src.play.ride import ride

    _package(tmp_path / "student", 0.0)
    video, side, clip = tmp_path / "student.mp4", tmp_path / "side.mp4", tmp_path / "gbuffers"
    config = RideConfig(headless=True, autopilot=True, frames=6, seed=1, checkpoint=str(tmp_path / "student"),
                        record=str(video), record_side_by_side=str(side), record_gbuffers=str(clip))  # fmt: skip
    assert ride(config).frames == 6
    assert read_video_frames(video).shape[1:3] == (H, W)
    assert read_video_frames(side).shape[1:3] == (
        H,
        3 * W,
    )  # student | raster | depth, each at the frame size
    assert load_gbuffer_clip(clip)[0]["color"].shape[1:3] == (H // 2, W // 2)
    ride(dataclasses.replace(config, gbuffer_size="frame", record_gbuffers=str(tmp_path / "full")))
    assert load_gbuffer_clip(tmp_path / "full")[0]["color"].shape[1:3] == (H, W)
