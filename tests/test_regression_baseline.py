"""The regression baseline: its contract, that it learns, and that it saves and loads exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from src.common.config import load_config
from src.diffusion.objectives import RegressionObjective
from src.net.regression import RegressionNet
from src.runtime.package import load_package
from src.train.config import TrainConfig

CONF = Path(__file__).resolve().parent.parent / "conf"


def l1_loss(model, batch):
    loss, logs = RegressionObjective()(model, batch, generator=torch.Generator().manual_seed(0))
    assert logs == {}
    return loss


def regression_config(dataset, runs_dir, max_steps: int, **changes) -> TrainConfig:
    """conf/regression_cpu.yaml on the tiny dataset: 16x16 crops, 2 clips a step, 8 channels."""
    config = load_config(TrainConfig, CONF / "base.yaml", CONF / "regression_cpu.yaml")
    config.runs_dir, config.run_name = str(runs_dir), "regression"
    config.data.dataset = str(dataset)
    config.data.crop, config.data.batch_size = (16, 16), 2
    config.model.overrides = {"hidden_channels": 8}
    config.max_steps, config.log_every_steps = max_steps, 1
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def train_regression(config: TrainConfig):
    """Train the run; returns (run folder, the trainer's EMA model: the weights its package holds)."""
    from accelerate.state import AcceleratorState, PartialState

    from src.train.loop import Trainer

    AcceleratorState._reset_state(reset_partial_state=True)
    PartialState._reset_state()
    trainer = Trainer(config)
    run_dir = trainer.run()
    return run_dir, trainer.ema_model().to("cpu")


def train_records(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "logs.jsonl").read_text().splitlines()]
    return [r for r in records if r["kind"] == "train"]


def test_output_shape_range_and_the_untrained_net_returns_its_flat_colour():
    model = RegressionNet(hidden_channels=16, num_blocks=2).eval()
    cond = torch.rand(2, 3, 9, 16, 24) * 2 - 1  # b t C h w
    with torch.no_grad():
        frames = model(cond)
    assert frames.shape == (2, 3, 3, 16, 24)
    assert torch.equal(frames, cond[:, :, 0:3])  # the zero-initialised head: albedo passes through
    # one evaluation per frame: a frame's output does not depend on the other frames
    with torch.no_grad():
        torch.nn.init.normal_(model.head.weight, std=0.1)
        frames = model(cond)
        alone = model(cond[:, 1:2])
    assert torch.allclose(frames[:, 1:2], alone, atol=1e-6)
    assert frames.min() >= -1 and frames.max() <= 1


def test_l1_loss_falls_on_a_fixed_batch(tiny_dataset):
    from src.data.loader import ClipDataset

    torch.manual_seed(0)
    dataset = ClipDataset(tiny_dataset, split="train", clip_frames=2, crop=32, seed=0)
    batch = dataset.batch_at(0, 4)
    model = RegressionNet(hidden_channels=32, num_blocks=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        loss = l1_loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]


def test_train_regression_writes_a_model_that_loads_back_equal(tiny_dataset, tmp_path):
    run_dir, model = train_regression(regression_config(tiny_dataset, tmp_path, 3))
    records = train_records(run_dir)
    assert [r["step"] for r in records] == [1, 2, 3]  # 3 steps, one L1 each
    files = sorted(p.name for p in run_dir.iterdir())
    assert files == [
        ".lock",
        "checkpoints",
        "command.txt",
        "curves.png",
        "dataset.json",  # the dataset's frame size and rate, checked on resume
        "logs.jsonl",
        "package",
        "run_config.yaml",
    ]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-0000003"]
    saved = yaml.safe_load((run_dir / "run_config.yaml").read_text())
    assert saved["objective"] == "regression"
    assert saved["conditions"]["channels"] == ["albedo", "depth", "normals", "flow"]
    loaded = load_package(run_dir / "package").model.eval()
    assert isinstance(loaded, RegressionNet) and loaded.config.hidden_channels == 8
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert not torch.equal(loaded.head.weight, torch.zeros_like(loaded.head.weight))  # it trained
    assert "`RegressionNet`" in (run_dir / "package" / "README.md").read_text()  # the one run card


def test_max_minutes_ends_the_run_at_that_step_checkpointed_and_exported(tiny_dataset, tmp_path):
    # a limit shorter than one step: the run stops after its first step, far before max_steps
    run_dir, _ = train_regression(regression_config(tiny_dataset, tmp_path, 1000, max_minutes=1e-6))
    assert [r["step"] for r in train_records(run_dir)] == [1]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-0000001"]
    assert (run_dir / "package" / "model.safetensors").is_file()


def test_save_pretrained_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(1)
    model = RegressionNet(hidden_channels=16, num_blocks=1, unshuffle_factor=4).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.head.weight, std=0.05)
    model.save_pretrained(tmp_path / "net")
    loaded = RegressionNet.from_pretrained(tmp_path / "net").eval()

    def public(config) -> dict:
        return json.loads(json.dumps({k: v for k, v in config.items() if not k.startswith("_")}))

    assert public(loaded.config) == public(model.config)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    cond = torch.rand(1, 2, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(cond), loaded(cond))


@pytest.mark.training
def test_the_trained_net_is_a_renderer_package_that_runs_in_ncnn_like_torch(tiny_dataset, tmp_path):
    import numpy as np

    from src.runtime.backends import make_renderer
    from src.runtime.renderer import render_clip

    run_dir, model = train_regression(regression_config(tiny_dataset, tmp_path, 2))
    package = load_package(run_dir / "package")
    assert type(package.model).__name__ == "RegressionNet" and (package.width, package.height) == (32, 32)
    manifest = json.loads((tiny_dataset / "manifest.json").read_text())
    assert package.stats.to_dict() == manifest["stats"]  # the dataset's statistics
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, package.model.state_dict()[name]), name
    torch.manual_seed(0)
    cond = torch.rand(3, 9, 32, 32) * 2 - 1  # t C h w
    torch_frames = render_clip(make_renderer(package), cond)
    with torch.no_grad():
        assert np.allclose(torch_frames, model(cond[None])[0].numpy(), atol=1e-6)  # frame by frame
    ncnn_frames = render_clip(make_renderer(package, backend="ncnn"), cond)
    assert np.abs(ncnn_frames - torch_frames).max() < 1e-4
