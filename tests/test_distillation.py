"""Few-step distillation: the objective on its own (a tiny teacher, a fixed batch), the
discriminator's batch composition, and train_net runs of it (resume, package, play, ncnn)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from src.diffusion.config import DistillConfig
from src.diffusion.distillation import GAME, REAL_VIDEO, DistillationObjective, discriminator_batch
from src.diffusion.objectives import FlowMatchingObjective
from src.net.presets import build_dit
from src.train.critics import CriticOptimisers

TINY = dict(hidden_dim=32, num_blocks=2, num_heads=2, stem_channels=8, refine_channels=8, window_framelets=2)


def distillation(
    teacher, *, steps: int = 1, last_step: bool = True, game_batch=None, perceptual=None, **config
):
    """A ``DistillationObjective`` of 2-frame framelets at shift 1 and context sigma 0.05, sampled
    as the package will (``steps``, ``last_step``: the context from the last step); ``config``:
    the ``distill`` section's fields."""
    return DistillationObjective(
        teacher=teacher,
        frames_per_framelet=2,
        num_denoising_steps=steps,
        context_from_last_step=last_step,
        context_sigma=0.05,
        shift=1.0,
        fake_score_recipe=FlowMatchingObjective(frames_per_framelet=2),
        perceptual=perceptual,
        game_batch=game_batch,
        config=DistillConfig(**config),
    )


def tiny_teacher():
    torch.manual_seed(0)
    teacher = build_dit("tiny", **TINY)
    with torch.no_grad():  # adaLN-Zero starts at the identity: give every weight a value
        for param in teacher.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return teacher


def fixed_batch():
    generator = torch.Generator().manual_seed(0)
    cond = torch.rand(2, 4, 9, 16, 16, generator=generator) * 2 - 1
    return {"frames": (0.5 * cond[:, :, :3] + 0.3 * cond[:, :, 3:6]).tanh(), "cond": cond}


def random_game_clips(count, generator):
    """Game clips as ``game_clip_source`` gives them: random conditions, a still camera (zero
    flow, every pixel followed) over a raster that does not change."""
    cond = torch.rand(count, 4, 9, 16, 16, generator=generator) * 2 - 1
    raster = (torch.rand(count, 1, 3, 16, 16, generator=generator) * 2 - 1).expand(count, 4, 3, 16, 16)
    return {"cond": cond, "raster": raster, "flow_px": torch.zeros(count, 4, 16, 16, 2),
            "valid_mask": torch.ones(count, 4, 16, 16)}  # fmt: skip


def test_the_raster_held_temporal_term_stills_the_game_clips():
    """On a still game camera the raster does not change, so the term is the generated clips'
    own frame-to-frame change, and training on it alone makes them steadier."""
    torch.manual_seed(1)
    student = build_dit("tiny", **TINY)
    objective = distillation(
        tiny_teacher(),
        game_batch=random_game_clips,
        ode_weight=0.0,
        dmd_weight=0.0,
        real_x0_weight=0.0,
        gan_weight=0.0,
        game_clips_per_batch=2,
        temporal_weight=1.0,
        critic_steps=0,
    )
    with pytest.raises(ValueError, match="temporal_reference"):
        distillation(
            tiny_teacher(),
            ode_weight=0.0,
            temporal_weight=1.0,
            temporal_reference="teacher",
            game_clips_per_batch=0,
        )
    optimizer = torch.optim.AdamW(student.parameters(), lr=3e-3)
    critics = CriticOptimisers(objective.critics)
    assert not critics  # no DMD, no GAN: nothing to train beside the student
    history = []
    for step in range(10):
        loss, logs = objective(
            student,
            fixed_batch(),
            generator=torch.Generator().manual_seed(step % 2),
            critic_step=critics.step,
        )
        assert set(logs) == {"temporal_loss"} and loss.item() == pytest.approx(logs["temporal_loss"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(logs["temporal_loss"])
    assert history[0] > 0 and np.mean(history[-3:]) < 0.85 * np.mean(history[:3])


@pytest.mark.parametrize("context_from_last_step", [True, False])
def test_the_objective_runs_and_its_regression_falls_on_a_fixed_batch(context_from_last_step):
    teacher = tiny_teacher()
    student = build_dit("tiny", **TINY)
    student.load_state_dict(teacher.state_dict())  # init_from the teacher, as a run does
    objective = distillation(
        teacher,
        steps=2,
        last_step=context_from_last_step,
        game_batch=random_game_clips,
        ode_teacher_steps=6,
        real_x0_weight=0.0,
        dmd_weight=0.1,
        gan_weight=0.01,
        game_clips_per_batch=1,
        critic_steps=2,
    )
    optimizer = torch.optim.AdamW(student.parameters(), lr=3e-3)
    critics = CriticOptimisers(objective.critics)  # the loop's optimisers of the fake score and discriminator
    batch = fixed_batch()
    history = []
    for step in range(12):
        loss, logs = objective(
            student, batch, generator=torch.Generator().manual_seed(step % 2), critic_step=critics.step
        )
        assert torch.isfinite(loss) and all(np.isfinite(v) for v in logs.values())
        assert {"ode_loss", "dmd_loss", "gan_loss", "fake_score_loss", "discriminator_loss"} <= set(logs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(logs["ode_loss"])
    # the regression onto the teacher's 6-step rollout from a 2-step start (seeds alternate: pairs)
    assert np.mean(history[-4:]) < 0.7 * np.mean(history[:4])


def test_the_discriminator_sees_real_video_frames_as_real_and_nothing_else():
    real = torch.rand(2, 4, 3, 8, 8)
    generated = torch.rand(3, 4, 3, 8, 8)  # two on real conditions, one on a game clip
    images, labels = discriminator_batch(real_frames=real, real_sources=[REAL_VIDEO] * 2, generated=generated)
    assert torch.equal(images[labels == 1], real.flatten(0, 1))
    assert torch.equal(images[labels == 0], generated.flatten(0, 1))
    with pytest.raises(AssertionError, match="real video frames only"):
        discriminator_batch(real_frames=real, real_sources=[REAL_VIDEO, GAME], generated=generated)


def test_every_real_labelled_image_of_a_step_is_a_frame_of_the_real_clips(monkeypatch):
    """Through a whole objective call with game clips in the batch: the discriminator's real side
    is exactly the batch's real frames; the game clips only ever appear as generated frames."""
    import src.diffusion.distillation as distillation_module

    seen = []
    original = distillation_module.discriminator_batch

    def recording(**kwargs):
        images, labels = original(**kwargs)
        seen.append((kwargs["real_sources"], kwargs["generated"].shape[0], images, labels))
        return images, labels

    monkeypatch.setattr(distillation_module, "discriminator_batch", recording)
    objective = distillation(
        tiny_teacher(),
        game_batch=random_game_clips,
        ode_weight=0.0,
        dmd_weight=0.0,
        game_clips_per_batch=2,
        critic_steps=2,
    )
    batch = fixed_batch()
    critics = CriticOptimisers(objective.critics)
    objective(
        build_dit("tiny", **TINY), batch, generator=torch.Generator().manual_seed(0), critic_step=critics.step
    )
    assert len(seen) == 2
    for sources, generated_clips, images, labels in seen:
        assert sources == [REAL_VIDEO, REAL_VIDEO] and generated_clips == 4  # 2 real + 2 game clips
        assert torch.equal(images[labels == 1], batch["frames"].flatten(0, 1))


# -- train_net runs of the objective --------------------------------------------------------


def distill_args(dataset, runs_dir, teacher, max_steps, *extra):
    from tests.test_train import tiny_overrides

    return [
        "--conf", "conf/distill_cpu.yaml",
        *tiny_overrides(dataset, runs_dir, max_steps, "--validation.enabled", "false"),
        "--init_from", str(teacher), "--teacher", str(teacher),
        "--distill.ode_teacher_steps", "2", "--distill.critic_steps", "2", "--distill.game_clips_per_batch", "1",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_teacher_run(tiny_dataset, tmp_path_factory):
    from tests.test_train import run_train, tiny_overrides

    runs = tmp_path_factory.mktemp("teacher")
    run_train(tiny_overrides(tiny_dataset, runs, 2, "--validation.enabled", "false"))
    return runs / "cpu_tiny"


@pytest.mark.training
def test_distilling_resumes_exactly_and_its_package_samples_in_one_pass(
    tiny_dataset, tiny_teacher_run, tmp_path
):
    import json

    from safetensors.torch import load_file

    from src.runtime.backends import make_renderer
    from src.runtime.package import load_package
    from src.runtime.renderer import render_clip
    from tests.test_train import run_train, train_logs

    run_train(distill_args(tiny_dataset, tmp_path / "a", tiny_teacher_run, 2))
    run_train(distill_args(tiny_dataset, tmp_path / "a", tiny_teacher_run, 4))
    run_train(distill_args(tiny_dataset, tmp_path / "b", tiny_teacher_run, 4))
    resumed, straight = (tmp_path / name / "distill_cpu" for name in ("a", "b"))
    records = [r for r in train_logs(resumed) if r["kind"] == "train"]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(np.isfinite(r[key]) for r in records for key in ("loss", "ode_loss", "dmd_loss", "gan_loss"))
    for name in ("model.safetensors", "custom_checkpoint_2.pkl"):  # the student; the critics (objective)
        a = resumed / "checkpoints/step-0000004" / name
        b = straight / "checkpoints/step-0000004" / name
        load = (
            load_file if name.endswith(".safetensors") else lambda p: _flat(torch.load(p, weights_only=True))
        )
        left, right = load(a), load(b)
        assert left.keys() == right.keys() and len(left) > 0
        for key in left:
            torch.testing.assert_close(left[key], right[key], rtol=0, atol=1e-6)

    # the package ships the sampling the student was trained for: 1 step, context from that step
    sampling = json.loads((resumed / "package" / "conditions.json").read_text())["sampling"]
    assert sampling["num_denoising_steps"] == 1 and sampling["context_from_last_step"] is True
    package = load_package(resumed / "package")
    cond = torch.rand(6, 9, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch_renderer = make_renderer(package, seed=5)
    assert torch_renderer.passes_per_step == 1
    reference = render_clip(torch_renderer, cond)
    ncnn_renderer = make_renderer(package, backend="ncnn", seed=5)
    assert ncnn_renderer.passes_per_step == 1
    assert np.abs(render_clip(ncnn_renderer, cond) - reference).max() < 1e-4

    from src.common.video import read_video_frames
    from tests.test_renderers import run

    video = tmp_path / "ride.mp4"
    done = run("src.scripts.play_game", "--checkpoint", str(resumed / "package"), "--headless", "--autopilot",
               "--frames", "8", "--record", str(video))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert read_video_frames(video).shape[:3] == (8, 32, 32)


def _flat(state, prefix=""):
    """A nested state dict as {dotted key: tensor} (numbers as tensors)."""
    out = {}
    for key, value in state.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        elif isinstance(value, list):
            out.update(_flat(dict(enumerate(value)), f"{name}."))
        elif isinstance(value, torch.Tensor):
            out[name] = value
        elif isinstance(value, (int, float)):
            out[name] = torch.tensor(float(value))
    return out
