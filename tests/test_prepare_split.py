"""prepare_data under ``accelerate launch --num_processes 2`` on one video: the two processes each
extract a contiguous part of its shards, and the dataset equals a one-process prepare's: every
shard's arrays and metadata, and the manifest (a part's first flow looks at the frame before it,
as in one process).

The launch starts two Python processes (gloo on the CPU), so the test is slow; it prepares 3 s
of the real bikes.mp4 at 40x32 and 10 fps in 8-frame shards (5 shards: 16 frames for one process, 14 for the other).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from tests.test_train import ROOT

PREPARE = ["--resolution", "40x32", "--fps", "10", "--end_s", "3", "--shard_frames", "8"]


def _prepare(video, out, *, processes: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("TQDM_DISABLE", None)  # the extraction bars say how many frames each process took
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(_free_port())]  # fmt: skip
    script = ["-m", "src.scripts.prepare_data", "--videos", str(video), "--out", str(out), *PREPARE]
    command = [*launch, *script] if processes == 2 else [sys.executable, *script]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _shards(root) -> dict[str, tuple[dict, dict]]:
    """Each shard's metadata and arrays (not its bytes: safetensors writes the metadata's keys in
    an order that changes from process to process)."""
    out = {}
    for path in sorted(root.rglob("*.safetensors")):
        with safe_open(str(path), framework="numpy") as handle:
            out[str(path.relative_to(root))] = (handle.metadata(), load_file(str(path)))
    return out


def _free_port() -> int:
    with socket.socket() as probe:  # another launch on this machine may hold accelerate's default port
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.multiprocess
def test_two_processes_split_one_video_and_write_what_one_process_writes(tmp_path):
    from src.data.sources import find_embedded_file

    bikes = find_embedded_file("bikes.mp4")
    one, two = tmp_path / "one", tmp_path / "two"
    _prepare(bikes, one, processes=1)
    done = _prepare(bikes, two, processes=2)
    shards, split = _shards(one), _shards(two)
    assert len(shards) == 5 and sorted(split) == sorted(shards)
    for name, (metadata, arrays) in shards.items():
        assert split[name][0] == metadata, name
        assert sorted(split[name][1]) == sorted(arrays)
        for key, array in arrays.items():
            assert split[name][1][key].dtype == array.dtype and np.array_equal(split[name][1][key], array), (
                key
            )
    manifests = [json.loads((root / "manifest.json").read_text()) for root in (one, two)]
    for manifest in manifests:
        manifest.pop("created_unix")
    assert manifests[0] == manifests[1]
    # each process extracted half the frames of the video (its extraction bar counts its part)
    bars = [line for line in done.stderr.splitlines() if " extract: " in line and "frame" in line]
    assert any("/16 frame" in line for line in bars) and any("/14 frame" in line for line in bars), bars[-6:]
