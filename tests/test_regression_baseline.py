"""The regression baseline: its contract, that it learns, and that it saves and loads exactly."""

from __future__ import annotations

import json

import torch

from src.net.regression import RegressionNet
from src.train.regression import RegressionTrainConfig, l1_loss, train_regression


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
    config = RegressionTrainConfig(
        dataset=str(tiny_dataset), max_steps=3, crop=(16, 16), batch_size=2, model={"hidden_channels": 8}
    )
    result = train_regression(config, out_dir=tmp_path / "regression")
    assert result.num_steps == 3 and len(result.losses) == 3
    files = sorted(p.name for p in result.out_dir.iterdir())
    assert files == [
        ".velodream-output.json",
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "package",
        "training.json",
    ]
    record = json.loads((result.out_dir / "training.json").read_text())
    assert record["num_steps"] == 3 and record["channels"] == ["albedo", "depth", "normals", "flow"]
    loaded = RegressionNet.from_pretrained(result.out_dir).eval()
    assert loaded.config.hidden_channels == 8
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert not torch.equal(loaded.head.weight, torch.zeros_like(loaded.head.weight))  # it trained


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


def test_the_trained_net_is_a_renderer_package_that_runs_in_ncnn_like_torch(tiny_dataset, tmp_path):
    import numpy as np

    from src.runtime.backends import make_renderer
    from src.runtime.package import load_package
    from src.runtime.renderer import render_clip

    config = RegressionTrainConfig(
        dataset=str(tiny_dataset), max_steps=2, crop=(16, 16), batch_size=2, model={"hidden_channels": 8}
    )
    result = train_regression(config, out_dir=tmp_path / "regression")
    package = load_package(result.package_dir)
    assert type(package.model).__name__ == "RegressionNet" and (package.width, package.height) == (32, 32)
    manifest = json.loads((tiny_dataset / "manifest.json").read_text())
    assert package.stats.to_dict() == manifest["stats"]  # the dataset's statistics
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(tensor, package.model.state_dict()[name]), name
    torch.manual_seed(0)
    cond = torch.rand(3, 9, 32, 32) * 2 - 1  # t C h w
    torch_frames = render_clip(make_renderer(package), cond)
    with torch.no_grad():
        assert np.allclose(torch_frames, result.model(cond[None])[0].numpy(), atol=1e-6)  # frame by frame
    ncnn_frames = render_clip(make_renderer(package, backend="ncnn"), cond)
    assert np.abs(ncnn_frames - torch_frames).max() < 1e-4
