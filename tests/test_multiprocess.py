"""Every training objective under ``accelerate launch --multi_gpu --num_processes 2`` on the CPU
(two gloo ranks): the ranks end with identical weights -- the model, and the critics and
discriminators an objective owns -- the log counts the effective batch of both ranks, and a
resumed two-process run equals a straight one.

(The flow-matching objective's two-rank test is ``tests/test_train.py``.) Each launch starts two
Python processes, so these tests are slow; they use the tiniest configs and 1-2 steps.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests import test_distillation
from tests.test_distillation import _flat, distill_args
from tests.test_student_training import student_args
from tests.test_train import ROOT, train_logs

tiny_teacher_run = test_distillation.tiny_teacher_run  # the fixture: a 2-step teacher run

LAUNCH_TWO = [
    sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
    "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
    "-m", "src.scripts.train_net",
]  # fmt: skip


def launch_two(*args: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    command = [*LAUNCH_TWO, *args, "--cpu", "true", "--num_threads", "1"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def assert_ranks_agree(run_dir, *, with_objective_state: bool) -> None:
    checks = [r for r in train_logs(run_dir) if r["kind"] == "ranks"]
    assert checks and all(r["num_processes"] == 2 for r in checks)
    assert max(r["max_param_sum_difference"] for r in checks) == 0.0
    if with_objective_state:
        assert all("max_objective_state_sum_difference" in r for r in checks)
        assert max(r["max_objective_state_sum_difference"] for r in checks) == 0.0


def assert_same_checkpoint(a, b) -> None:
    """The model and the objective's state (critics, discriminators, their optimisers)."""
    for name in ("model.safetensors", "custom_checkpoint_2.pkl"):
        load = (
            load_file if name.endswith(".safetensors") else lambda p: _flat(torch.load(p, weights_only=True))
        )
        left, right = load(a / name), load(b / name)
        assert left.keys() == right.keys() and len(left) > 0
        for key in left:
            assert torch.equal(left[key], right[key]), (name, key)


@pytest.mark.multiprocess
def test_distillation_on_two_ranks_keeps_student_and_critics_identical_and_resumes_exactly(
    tiny_dataset, tiny_teacher_run, tmp_path
):
    def args(runs, steps):
        return [
            "--conf", "conf/base.yaml", "--conf", "conf/cpu_tiny.yaml",
            *distill_args(tiny_dataset, runs, tiny_teacher_run, steps, "--checkpoint_every_steps", "1",
                          "--optim.gradient_accumulation_steps", "2", "--distill.critic_steps", "1",
                          "--distill.game_clips_per_batch", "0"),
        ]  # fmt: skip

    launch_two(*args(tmp_path / "straight", 2))
    launch_two(*args(tmp_path / "resumed", 1))
    launch_two(*args(tmp_path / "resumed", 2))
    straight, resumed = (tmp_path / name / "distill_cpu" for name in ("straight", "resumed"))
    assert_ranks_agree(straight, with_objective_state=True)
    assert_ranks_agree(resumed, with_objective_state=True)
    # 2 real clips per micro-batch x 2 micro-batches x 2 ranks = 8 clips per optimiser step
    assert [r["samples_seen"] for r in train_logs(straight) if r["kind"] == "train"] == [8, 16]
    assert [r["step"] for r in train_logs(resumed) if r["kind"] == "train"] == [1, 2]
    assert_same_checkpoint(straight / "checkpoints/step-0000002", resumed / "checkpoints/step-0000002")


@pytest.mark.multiprocess
def test_the_student_on_two_ranks_keeps_student_and_discriminator_identical(tiny_dataset, tmp_path):
    from src.train.package import write_flat_color_package

    teacher = write_flat_color_package(tmp_path / "teacher", dataset=tiny_dataset)
    launch_two(*student_args(tiny_dataset, teacher, tmp_path / "runs", 2, "--validation.enabled", "false",
                             "--checkpoint_every_steps", "1"))  # fmt: skip
    run = tmp_path / "runs" / "student_cpu"
    assert_ranks_agree(run, with_objective_state=True)
    # 1 real clip per batch x 2 ranks
    assert [r["samples_seen"] for r in train_logs(run) if r["kind"] == "train"] == [2, 4]
