"""Training the student: the objective on its own, and train_net with objective student
(teacher rollouts, game clips, PatchGAN, temporal loss) resuming bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from src.conditions.warp import backward_warp
from src.diffusion.config import StudentConfig
from src.diffusion.student import StudentObjective
from src.diffusion.temporal import temporal_loss
from src.net.student import build_student
from src.train.critics import CriticOptimisers

ROOT = Path(__file__).resolve().parents[1]
TINY_STUDENT = "{channels: [8, 12, 16], state_channels: 8, upscale: 2}"  # 32x32 frames from 16x16 conditions


def test_the_temporal_loss_is_zero_when_the_output_changes_as_the_target_does():
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 3, 16, 16, generator=generator)
    flow = torch.zeros(1, 3, 16, 16, 2)
    flow[..., 0] = 1.5
    valid = torch.ones(1, 3, 16, 16)
    offset = torch.rand(1, 1, 3, 1, 1, generator=generator)  # a constant colour shift moves nothing
    assert temporal_loss(target + offset, target, flow, valid) < 1e-6
    flicker = target + 0.2 * torch.rand(1, 3, 3, 16, 16, generator=generator)
    assert temporal_loss(flicker, target, flow, valid) > 0.02
    # a target that moves along the flow: an output that stands still is penalised
    moving = target.clone()
    for i in range(1, 3):
        moving[:, i] = backward_warp(moving[:, i - 1], flow[:, i])
    still = moving[:, :1].expand(-1, 3, -1, -1, -1)
    assert temporal_loss(still, moving, flow, valid) > 10 * temporal_loss(moving, moving, flow, valid) + 1e-3


def test_the_student_objective_lowers_its_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_student("tiny", channels=(8, 12, 16), state_channels=8)
    generator = torch.Generator().manual_seed(0)
    cond = torch.rand(2, 4, 9, 16, 16, generator=generator) * 2 - 1
    frames = (0.5 * cond[:, :, :3] + 0.3 * cond[:, :, 3:6]).tanh()
    flow = torch.zeros(1, 4, 16, 16, 2)
    game = {"cond": cond[:1], "flow_px": flow, "valid_mask": torch.ones(1, 4, 16, 16)}
    seen_seeds = []

    def teacher(c, seeds):
        seen_seeds.append(seeds)
        return (0.5 * c[:, :, :3] + 0.3 * c[:, :, 3:6]).tanh()

    objective = StudentObjective(
        teacher=teacher,
        game_clips=lambda index, count: game,
        config=StudentConfig(game_clips_per_batch=1),
        discriminator=torch.nn.Conv2d(3, 1, 4, stride=2),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    critics = CriticOptimisers(objective.critics)  # the loop's optimiser of the discriminator
    batch = {"frames": frames, "cond": cond}
    losses = []
    for step in range(40):
        loss, logs = objective(
            model, batch, generator=torch.Generator().manual_seed(step % 3), critic_step=critics.step
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(logs["teacher_l1"])
    assert {"teacher_l1", "real_l1", "temporal", "adversarial", "discriminator"} <= set(logs)
    assert len(seen_seeds[0]) == 3  # two real clips and one game clip
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3]), losses  # seen: 0.268 -> 0.189
    # the generator's loss leaves the discriminator's gradients alone (it has its own step)
    assert all(p.grad is None for p in objective.discriminator.parameters()) or logs["discriminator"] >= 0
    state = critics.state_dict()
    assert set(state) == {"discriminator", "discriminator_optimizer"}
    assert state["discriminator_optimizer"]["state"]  # it was stepped


def student_args(dataset, teacher, runs_dir, max_steps, *extra):
    return [
        "--conf", "conf/base.yaml", "--conf", "conf/student_cpu.yaml",
        "--runs_dir", str(runs_dir), "--data.dataset", str(dataset), "--teacher", str(teacher),
        "--max_steps", str(max_steps), "--data.crop", "[32, 32]", "--data.batch_size", "1",
        "--data.clip_frames", "4", "--checkpoint_every_steps", "2", "--model.preset", "tiny",
        "--model.overrides", TINY_STUDENT, "--student.game_clips_per_batch", "1",
        "--validation.rollout_frames", "4", "--validation.num_real_clips", "1",
        "--validation.game_rollout_frames", "4", "--log_every_steps", "1", "--num_threads", "2",
        *extra,
    ]  # fmt: skip


def run_student(args):
    from accelerate.state import AcceleratorState, PartialState

    from src.scripts.train_net import main

    AcceleratorState._reset_state(reset_partial_state=True)
    PartialState._reset_state()
    main(args)


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.mark.training
def test_a_student_run_resumes_bit_for_bit_and_exports_a_recurrent_package(tiny_dataset, tmp_path):
    from src.runtime.backends import make_renderer
    from src.runtime.package import load_package
    from src.train.package import write_flat_color_package

    teacher = write_flat_color_package(tmp_path / "teacher", dataset=tiny_dataset)
    run_student(student_args(tiny_dataset, teacher, tmp_path / "a", 2))
    run = tmp_path / "a" / "student_cpu"
    checkpoint = run / "checkpoints" / "step-0000002"
    assert (checkpoint / "custom_checkpoint_2.pkl").is_file()  # the PatchGAN and its optimiser
    logs = [json.loads(line) for line in (run / "logs.jsonl").read_text().splitlines()]
    train = [r for r in logs if r["kind"] == "train"]
    assert {"teacher_l1", "real_l1", "temporal", "adversarial", "discriminator"} <= set(train[-1])
    validation = [r for r in logs if r["kind"] == "validation"]
    assert {"real_psnr", "game_warp_error", "game_swd_to_real"} <= set(validation[-1])
    package = load_package(run / "package")
    assert type(package.model).__name__ == "StudentUNet"
    renderer = make_renderer(package, backend="torch")
    assert renderer.step(torch.zeros(1, 9, 32, 32)).shape == (1, 3, 32, 32)

    run_student(student_args(tiny_dataset, teacher, tmp_path / "a", 4, "--validation.enabled", "false"))
    run_student(student_args(tiny_dataset, teacher, tmp_path / "b", 4, "--validation.enabled", "false"))
    straight_dir = tmp_path / "b" / "student_cpu" / "checkpoints" / "step-0000004"
    for name in ("model.safetensors",):
        resumed, straight = load_file(run / "checkpoints/step-0000004" / name), load_file(straight_dir / name)
        assert resumed.keys() == straight.keys()
        for key in resumed:
            assert torch.equal(resumed[key], straight[key]), key
    resumed = torch.load(run / "checkpoints/step-0000004/custom_checkpoint_2.pkl", weights_only=True)
    straight = torch.load(straight_dir / "custom_checkpoint_2.pkl", weights_only=True)
    for key in resumed["discriminator"]:
        assert torch.equal(resumed["discriminator"][key], straight["discriminator"][key]), key


def test_runs_started_before_model_class_existed_still_resume(tmp_path):
    import yaml

    from src.common.config import to_dict
    from src.common.errors import UserError
    from src.train.config import TrainConfig
    from src.train.run_folder import check_same_run as _check_same_run

    config = TrainConfig()
    saved = to_dict(config)
    del saved["model"]["model_class"]  # a DiT run's run_config.yaml from before the field
    (tmp_path / "run_config.yaml").write_text(yaml.safe_dump(saved))
    _check_same_run(tmp_path, config)
    config.model.model_class = "StudentUNet"
    with pytest.raises(UserError):
        _check_same_run(tmp_path, config)


def test_the_student_presets_resolve(capsys):
    from src.scripts.train_net import main

    for preset in ("student_cpu", "student_gpu"):
        with pytest.raises(SystemExit) as exit_info:
            main(["--conf", "conf/base.yaml", "--conf", f"conf/{preset}.yaml", "--print_config"])
        assert exit_info.value.code == 0
        printed = capsys.readouterr().out
        assert f"run_name: {preset}" in printed and "model_class: StudentUNet" in printed
    # the stabilising fine-tune at the play size stacks on student_cpu and student_finetune_cpu
    stack = ["student_cpu", "student_finetune_cpu", "student224_stabilise_cpu"]
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--conf",
                "conf/base.yaml",
                *(x for p in stack for x in ("--conf", f"conf/{p}.yaml")),
                "--print_config",
            ]
        )
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "temporal_reference: raster" in printed and "crop: [224, 224]" in printed
    assert "teacher: runs/bundle_student_finetune" in printed and "perceptual_weight: 0.5" in printed
