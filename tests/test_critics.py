"""The critics' optimisers the training loop owns (src/train/critics.py): schedule, clipping,
checkpointed state, and the settings each objective takes from its config section."""

from __future__ import annotations

import pytest
import torch

from src.common.errors import UserError
from src.diffusion.config import DistillConfig, StudentConfig
from src.diffusion.critics import GAN_BETAS, Critic
from src.diffusion.distillation import DistillationObjective
from src.diffusion.objectives import FlowMatchingObjective
from src.diffusion.student import StudentObjective
from src.net.presets import build_dit
from src.train.critics import CriticOptimisers


def linear_critic(name="critic", **settings) -> Critic:
    torch.manual_seed(0)
    return Critic(name, torch.nn.Linear(4, 1), learning_rate=1e-2, betas=GAN_BETAS, **settings)


def test_the_learning_rate_warms_up_over_the_model_steps_then_stays():
    critics = CriticOptimisers([linear_critic(warmup_steps=4)])
    rates = []
    for step in (0, 1, 3, 4, 100):
        critics.set_schedule_step(step)
        rates.append(critics.optimizers["critic"].param_groups[0]["lr"])
    assert rates == pytest.approx([2.5e-3, 5e-3, 1e-2, 1e-2, 1e-2])
    still = CriticOptimisers([linear_critic()])
    still.set_schedule_step(0)
    assert still.optimizers["critic"].param_groups[0]["lr"] == 1e-2  # no warmup: the rate itself


def test_a_step_clips_where_asked_and_only_moves_its_own_critic():
    inputs = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    for max_norm in (None, 1e-3):
        critic, other = linear_critic(max_grad_norm=max_norm), linear_critic("other")
        critics = CriticOptimisers([critic, other])
        before = [p.detach().clone() for p in other.module.parameters()]
        critics.step("critic", 1000 * critic.module(inputs).square().mean())
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in critic.module.parameters()]))
        if max_norm is None:
            assert norm > 1.0
        else:
            assert norm <= max_norm * 1.0001
        assert all(torch.equal(a, b) for a, b in zip(before, other.module.parameters()))


def test_the_state_round_trips_and_a_foreign_state_is_refused_in_one_line():
    critics = CriticOptimisers([linear_critic()])
    critics.step("critic", critics.critics["critic"].module(torch.ones(2, 4)).sum())
    state = critics.state_dict()
    assert set(state) == {"critic", "critic_optimizer"}
    fresh = CriticOptimisers([linear_critic()])
    fresh.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(fresh.critics["critic"].module.parameters(),
                                                  critics.critics["critic"].module.parameters()))  # fmt: skip
    assert fresh.optimizers["critic"].state_dict()["state"]
    with pytest.raises(UserError, match="critic state"):
        CriticOptimisers([linear_critic("discriminator")]).load_state_dict(state)


def distillation(teacher, config: DistillConfig) -> DistillationObjective:
    return DistillationObjective(
        teacher=teacher,
        config=config,
        frames_per_framelet=2,
        num_denoising_steps=1,
        context_from_last_step=True,
        context_sigma=0.05,
        shift=1.0,
        fake_score_recipe=FlowMatchingObjective(frames_per_framelet=2),
    )


def test_each_objective_takes_its_critics_settings_from_its_config_section():
    torch.manual_seed(0)
    teacher = build_dit("tiny", hidden_dim=32, num_blocks=1, num_heads=2, stem_channels=8, refine_channels=8)
    distill = distillation(
        teacher,
        DistillConfig(
            critic_learning_rate=3e-5,
            critic_warmup_steps=7,
            discriminator_max_grad_norm=2.0,
            game_clips_per_batch=0,
        ),
    )
    fake_score, discriminator = distill.critics
    assert (fake_score.name, fake_score.learning_rate, fake_score.max_grad_norm) == ("fake_score", 3e-5, 1.0)
    assert (discriminator.name, discriminator.max_grad_norm) == ("discriminator", 2.0)
    assert fake_score.warmup_steps == discriminator.warmup_steps == 7
    assert fake_score.module is distill.fake_score and discriminator.module is distill.discriminator
    no_gan = distillation(teacher, DistillConfig(dmd_weight=0.0, gan_weight=0.0, game_clips_per_batch=0))
    assert no_gan.critics == []
    student = StudentObjective(
        teacher=None,
        game_clips=None,
        config=StudentConfig(
            game_clips_per_batch=0, discriminator_learning_rate=5e-4, discriminator_warmup_steps=3
        ),
        discriminator=torch.nn.Conv2d(3, 1, 4),
    )
    (only,) = student.critics
    assert (only.name, only.learning_rate, only.warmup_steps, only.betas) == (
        "discriminator",
        5e-4,
        3,
        GAN_BETAS,
    )
    assert (
        StudentObjective(
            teacher=None,
            game_clips=None,
            config=StudentConfig(game_clips_per_batch=0, adversarial_weight=0.0),
            discriminator=torch.nn.Conv2d(3, 1, 4),
        ).critics
        == []
    )
