"""FSDP on the CPU: accelerate's ``--use_fsdp --fsdp_version 2`` does not shard there.

With ``--cpu true`` accelerate makes gloo DDP ranks (distributed type MULTI_CPU) and ignores the
FSDP flags without a word; the loop says so in one line, and the ``ranks`` record shows each rank
holding the whole model (``local_parameter_fraction`` 1.0, which FSDP would make about 1/ranks).
This test pins that behaviour: when accelerate starts sharding on the CPU it fails, and the FSDP
paragraph of the README's "Scaling out" section must be revisited. The launch starts two Python
processes, so it is slow; the tiniest config, 2 steps.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.test_train import ROOT, tiny_overrides, train_logs


def _free_port() -> int:
    with socket.socket() as probe:  # another launch on this machine may hold accelerate's default port
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.multiprocess
def test_accelerates_fsdp_flags_on_the_cpu_train_unsharded_and_say_so(tiny_dataset, tmp_path):
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--use_fsdp", "--fsdp_version", "2",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()),
        "-m", "src.scripts.train_net", "--conf", "conf/base.yaml", "--conf", "conf/cpu_tiny.yaml",
        "--cpu", "true", "--num_threads", "1",
        *tiny_overrides(tiny_dataset, tmp_path, 2, "--validation.enabled", "false"),
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "accelerate was launched with --use_fsdp, but it does not shard on cpu" in done.stdout
    ranks = [r for r in train_logs(tmp_path / "cpu_tiny") if r["kind"] == "ranks"]
    assert ranks and all(r["num_processes"] == 2 for r in ranks)
    assert [r["local_parameter_fraction"] for r in ranks] == [1.0] * len(ranks)
    assert max(r["max_param_sum_difference"] for r in ranks) == 0.0
