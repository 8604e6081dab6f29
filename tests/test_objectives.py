"""The training objective on its own (no loop), and the same object driving train_net."""

from __future__ import annotations

import torch

from src.diffusion.config import DiffusionConfig
from src.diffusion.objectives import FlowMatchingObjective
from src.net.presets import build_dit


def fixed_batch():
    generator = torch.Generator().manual_seed(0)
    cond = torch.rand(2, 4, 9, 16, 16, generator=generator) * 2 - 1
    # frames that depend on the condition, so there is something to learn beyond the albedo residual
    frames = (0.5 * cond[:, :, :3] + 0.3 * cond[:, :, 3:6]).tanh()
    return {"frames": frames, "cond": cond}


def test_the_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_dit("tiny", hidden_dim=32, num_blocks=2, num_heads=2, stem_channels=8, refine_channels=8)
    objective = FlowMatchingObjective(frames_per_framelet=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = fixed_batch()

    def loss_at(step: int) -> torch.Tensor:
        # the same noise every time: only the weights change between evaluations
        return objective(model, batch, generator=torch.Generator().manual_seed(step % 4))[0]

    with torch.no_grad():
        before = sum(loss_at(i).item() for i in range(4))
    for step in range(40):
        loss = loss_at(step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
    with torch.no_grad():
        after = sum(loss_at(i).item() for i in range(4))
    assert after < 0.7 * before


def test_sigma_recipe_clean_context_and_determinism():
    objective = FlowMatchingObjective(
        frames_per_framelet=2, config=DiffusionConfig(clean_context_probability=1.0, context_noise_max=0.1)
    )
    sigma = objective.sample_sigmas(8, 3, generator=torch.Generator().manual_seed(1))
    assert sigma.shape == (8, 3)
    assert (sigma[:, :-1] <= 0.1).all()  # every clip got clean context before its last framelet
    again = objective.sample_sigmas(8, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(sigma, again)


def test_the_same_objective_object_drives_train_net(tiny_dataset, tmp_path, monkeypatch):
    from tests.test_train import run_train, tiny_overrides

    calls = []
    original = FlowMatchingObjective.__call__

    def counting(self, model, batch, *, generator, critic_step):
        calls.append(self)
        return original(self, model, batch, generator=generator, critic_step=critic_step)

    monkeypatch.setattr(FlowMatchingObjective, "__call__", counting)
    run_train(tiny_overrides(tiny_dataset, tmp_path, 2, "--validation.enabled", "false"))
    assert len(calls) == 2 and all(isinstance(c, FlowMatchingObjective) for c in calls)
    assert calls[0] is calls[1]
