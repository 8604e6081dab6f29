"""train_net end to end on a tiny prepared dataset: files on disk, resume, interrupted saves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from src.common.config import load_config
from src.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TRAIN_NET = [
    sys.executable,
    "-m",
    "src.scripts.train_net",
    "--conf",
    "conf/base.yaml",
    "--conf",
    "conf/cpu_tiny.yaml",
]
TINY_MODEL = "{hidden_dim: 64, num_blocks: 2, num_heads: 2, stem_channels: 8, refine_channels: 8}"


def tiny_overrides(dataset, runs_dir, max_steps, *extra):
    return [
        "--runs_dir",
        str(runs_dir),
        "--data.dataset",
        str(dataset),
        "--max_steps",
        str(max_steps),
        "--data.crop",
        "[32, 32]",
        "--data.batch_size",
        "2",
        "--checkpoint_every_steps",
        "2",
        "--model.overrides",
        TINY_MODEL,
        "--validation.rollout_frames",
        "4",
        "--validation.num_real_clips",
        "1",
        "--validation.game_rollout_frames",
        "4",
        "--log_every_steps",
        "1",
        *extra,
    ]


def run_train(args):
    from accelerate.state import AcceleratorState, PartialState

    from src.scripts.train_net import main

    AcceleratorState._reset_state(reset_partial_state=True)
    PartialState._reset_state()
    main(["--conf", "conf/base.yaml", "--conf", "conf/cpu_tiny.yaml", *args])


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def train_logs(run_dir):
    return [json.loads(line) for line in (run_dir / "logs.jsonl").read_text().splitlines()]


@pytest.mark.training
def test_two_steps_leave_exactly_the_expected_files_and_resume_matches_one_run(tiny_dataset, tmp_path):
    run_train(tiny_overrides(tiny_dataset, tmp_path / "a", 2))
    run = tmp_path / "a" / "cpu_tiny"
    files = {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}
    checkpoint = {
        f"checkpoints/step-0000002/{name}"
        for name in (
            "model.safetensors",
            "optimizer.bin",
            "scheduler.bin",
            "random_states_0.pkl",
            "custom_checkpoint_0.pkl",
            "custom_checkpoint_1.pkl",
            "complete.json",
        )
    }
    package = {
        f"package/{name}"
        for name in (
            "config.json",
            "model.safetensors",
            "conditions.json",
            "README.md",
            "samples_real.png",
            "samples_game.png",
            "curves.png",
        )
    }
    samples = {
        f"samples/{name}"
        for name in (
            "real_step0000002.mp4",
            "real_step0000002.png",
            "real_latest.png",
            "game_step0000002.mp4",
            "game_step0000002.png",
            "game_latest.png",
        )
    }
    validation = {p for p in files if p.startswith("validation/")}
    assert (
        files
        == {
            "run_config.yaml",
            "dataset.json",
            "logs.jsonl",
            "command.txt",
            "curves.png",
            ".lock",
            "package/.velodream-output.json",
        }
        | checkpoint
        | package
        | samples
        | validation
    )
    marker = json.loads((run / "checkpoints/step-0000002/complete.json").read_text())
    assert marker["step"] == 2 and marker["data_position"] == 2
    resolved = load_config(TrainConfig, run / "run_config.yaml")
    assert resolved.max_steps == 2 and resolved.data.dataset == str(tiny_dataset)

    # Re-running the same command with more steps continues at step 2 ...
    run_train(tiny_overrides(tiny_dataset, tmp_path / "a", 4))
    steps = [r["step"] for r in train_logs(run) if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4]
    # ... and ends exactly where one uninterrupted 4-step run ends (same data, RNG, optimiser).
    run_train(tiny_overrides(tiny_dataset, tmp_path / "b", 4))
    resumed = load_file(run / "checkpoints/step-0000004/model.safetensors")
    straight = load_file(tmp_path / "b" / "cpu_tiny" / "checkpoints/step-0000004/model.safetensors")
    assert resumed.keys() == straight.keys()
    for name in resumed:
        torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=1e-6)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-0000002", "step-0000004"]
    validation = [r for r in train_logs(run) if r["kind"] == "validation"]
    assert {
        "real_psnr",
        "real_ssim",
        "real_flat_psnr",
        "game_warp_error",
        "game_swd_to_real",
        "game_raster_swd_to_real",
    } <= set(validation[-1])


@pytest.mark.slow
def test_a_run_killed_while_saving_resumes_from_the_previous_checkpoint(tiny_dataset, tmp_path):
    run_train(tiny_overrides(tiny_dataset, tmp_path, 2, "--validation.enabled", "false"))
    run = tmp_path / "cpu_tiny"
    # What a kill during the step-4 save leaves behind: a staging folder without its marker.
    staged = run / "checkpoints" / ".step-0000004.tmp"
    staged.mkdir()
    (staged / "model.safetensors").write_bytes(b"half a file")
    run_train(tiny_overrides(tiny_dataset, tmp_path, 4, "--validation.enabled", "false"))
    steps = [r["step"] for r in train_logs(run) if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4]
    assert not staged.exists()
    assert json.loads((run / "checkpoints/step-0000004/complete.json").read_text())["step"] == 4


@pytest.mark.training
def test_sigkill_during_training_then_rerun_completes(tiny_dataset, tmp_path):
    args = [
        *TRAIN_NET,
        *tiny_overrides(
            tiny_dataset, tmp_path, 400, "--validation.enabled", "false", "--checkpoint_every_steps", "1"
        ),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "cpu_tiny" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(checkpoints.glob("step-*"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # lands anywhere: mid-step or mid-save
    process.wait()
    from src.train.checkpoint import latest_checkpoint

    step, _ = latest_checkpoint(tmp_path / "cpu_tiny")
    assert step >= 1
    run_train(tiny_overrides(tiny_dataset, tmp_path, step + 1, "--validation.enabled", "false"))
    assert latest_checkpoint(tmp_path / "cpu_tiny")[0] == step + 1
    steps = [r["step"] for r in train_logs(tmp_path / "cpu_tiny") if r["kind"] == "train"]
    assert steps == list(range(1, step + 2))  # the steps logged after the kept checkpoint are not doubled


def test_batches_read_in_worker_processes_are_the_step_batches(tiny_dataset):
    from src.train.data import TrainingData

    config = load_config(TrainConfig, "conf/base.yaml", "conf/cpu_tiny.yaml", overrides=[
        "--data.dataset", str(tiny_dataset), "--data.crop", "[32, 32]", "--data.batch_size", "2",
        "--data.num_workers", "2"])  # fmt: skip
    data = TrainingData(config, process_index=1, num_processes=2)
    batches = data.batches(3)  # a run resumed at step 3
    for index in (3, 4, 5):
        batch, expected = next(batches), data.train_batch(index)
        assert torch.equal(batch["frames"], expected["frames"]) and torch.equal(
            batch["cond"], expected["cond"]
        )


def test_print_config_for_every_readme_preset(capsys):
    for preset in ("cpu_tiny", "pretrain_lowres", "pretrain_highres"):
        with pytest.raises(SystemExit) as exit_info:
            from src.scripts.train_net import main

            main(["--conf", "conf/base.yaml", "--conf", f"conf/{preset}.yaml", "--print_config"])
        assert exit_info.value.code == 0
        printed = capsys.readouterr().out
        assert f"run_name: {preset}" in printed
    with pytest.raises(SystemExit):
        main(
            [
                "--conf",
                "conf/base.yaml",
                "--conf",
                "conf/pretrain_highres.yaml",
                "--conf.init_from",
                "runs/x",
                "--print_config",
            ]
        )
    assert "init_from: runs/x" in capsys.readouterr().out


@pytest.mark.slow
def test_missing_dataset_is_one_clear_error(tmp_path):
    result = subprocess.run(
        [
            *TRAIN_NET,
            "--data.dataset",
            str(tmp_path / "nothing"),
            "--data.prepare_defaults_if_missing",
            "false",  # as every preset but cpu_tiny (tests/test_train_auto_data.py)
            "--runs_dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: no prepared dataset at")
    assert "Traceback" not in result.stderr


@pytest.mark.multiprocess
def test_two_gloo_ranks_on_the_cpu_keep_identical_parameters(tiny_dataset, tmp_path):
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "src.scripts.train_net",
        "--conf",
        "conf/base.yaml",
        "--conf",
        "conf/cpu_tiny.yaml",
        "--cpu",
        "true",
        "--num_threads",
        "1",
        *tiny_overrides(tiny_dataset, tmp_path, 3, "--validation.enabled", "false"),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    records = train_logs(tmp_path / "cpu_tiny")
    checks = [r for r in records if r["kind"] == "ranks"]
    assert checks and all(r["num_processes"] == 2 for r in checks)
    assert max(r["max_param_sum_difference"] for r in checks) == 0.0
    steps = [r["step"] for r in records if r["kind"] == "train"]
    assert steps == [1, 2, 3]
    # each step used 2 ranks x 2 clips
    assert [r["samples_seen"] for r in records if r["kind"] == "train"] == [4, 8, 12]


def test_host_threads_follow_num_threads_else_a_few_on_a_gpu():
    from src.train.host import GPU_HOST_THREADS, host_threads

    assert host_threads(TrainConfig(num_threads=3), cuda=True) == 3
    assert host_threads(TrainConfig(num_threads=3), cuda=False) == 3
    assert host_threads(TrainConfig(), cuda=False) is None  # torch's own choice on a CPU
    assert host_threads(TrainConfig(), cuda=True) == min(GPU_HOST_THREADS, os.cpu_count())
    assert host_threads(TrainConfig(cpu=True), cuda=True) is None  # --cpu on a GPU machine
