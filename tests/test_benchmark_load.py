"""The benchmark's background load and its stage accounting: the busy processes start, spin and
stop with the block (and with the benchmark); every row's loop stages plus ``other`` are its frame
time (pipelined, the model runs beside the loop and the loop's wait for it counts instead); rows
under load carry their FPS beside the idle one; ``--threads`` reaches the runtime."""

from __future__ import annotations

import json
import shutil
import time

import psutil
import pytest

from src.bench.background_load import BackgroundLoad
from tests.test_scripts import run

LOOP_STAGES = ("world_ms", "gbuffer_ms", "encode_ms", "display_ms", "wait_ms", "other_ms")


def stages(row: dict) -> tuple[str, ...]:
    """The stages that add up to a row's frame: in sequence the model's too."""
    return LOOP_STAGES if row["pipelined"] else (*LOOP_STAGES, "model_ms_per_frame")


@pytest.mark.multiprocess
def test_the_background_load_spins_for_the_block_and_is_gone_after_it():
    with BackgroundLoad(1) as load:
        (process,) = load.processes
        busy = psutil.Process(process.pid)
        before = sum(busy.cpu_times()[:2])
        time.sleep(0.5)
        assert sum(busy.cpu_times()[:2]) - before > 0.05  # it works a core, even on a loaded machine
    assert process.poll() is not None


@pytest.mark.multiprocess
def test_rows_under_load_sit_beside_idle_ones_and_their_stages_add_up(tiny_dit_package, tmp_path):
    small_package = shutil.copytree(tiny_dit_package, tmp_path / "package")  # the ONNX export goes into it
    out = tmp_path / "bench.json"
    done = run(
        "src.scripts.benchmark",
        *("--checkpoint", str(small_package), "--resolutions", "[model]", "--steps", "[1]"),
        *("--backends", "[onnxruntime]", "--frames", "4", "--warmup_frames", "1"),
        *("--threads", "1", "--background_load", "1", "--json_out", str(out)),
        env={"SDL_VIDEODRIVER": "dummy"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "FPS load" in done.stdout and "onnxruntime" in done.stdout
    result = json.loads(out.read_text())
    assert result["machine"]["runtime_threads"] == 1 and result["machine"]["omp_wait_policy"] == "PASSIVE"
    raster, neural = result["rows"]
    assert neural["backend"] == "onnxruntime" and neural["threads"] == 1
    assert neural["pipelined"] and not raster["pipelined"]  # the default: the model beside the loop
    assert neural["latency_ms"] > 0 and raster["latency_ms"] == 0
    for row in (raster, neural):
        assert abs(sum(row[name] for name in stages(row)) - row["frame_ms"]) < 1e-6
        assert row["other_ms"] > -1e-6  # no stage counted twice
        assert row["fps_under_load"] > 0 and row["load_fps_ratio"] == row["fps_under_load"] / row["fps"]
    assert (
        neural["model_ms_per_frame"] > 0 and neural["model_ms_per_framelet"] >= neural["model_ms_per_frame"]
    )
