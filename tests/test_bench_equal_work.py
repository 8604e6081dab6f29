"""bench_equal_work runs both systems at the same shapes, writes its JSON, and refuses bad input in
one line; the plain reference's cached generation equals its own full causal forward."""

from __future__ import annotations

import json

import pytest
import torch

from src.bench import equal_work
from src.bench.equal_work import EqualWorkConfig, PlainCausalDiT, randomize, run_and_report
from src.scripts.bench_equal_work import main

TINY = dict(
    resolution=32,
    hidden_dim=32,
    num_blocks=2,
    num_heads=2,
    rounds=2,
    framelets_per_round=2,
    warmup_framelets=1,
)


def test_tiny_run_times_every_system_and_writes_json(tmp_path, capsys):
    out = tmp_path / "equal.json"
    result = run_and_report(EqualWorkConfig(**TINY, json_out=str(out)))
    written = json.loads(out.read_text())
    assert [row["system"] for row in written["rows"]] == ["reference", "ours", "ours_stem_smooth"]
    for row in written["rows"]:
        assert len(row["ms_per_framelet_rounds"]) == 2 and row["best_ms"] > 0
    reference, ours = written["rows"][0], written["rows"][1]
    # the same shapes: the same parameters, but for the one extra bias of our two patch embeddings
    assert round(abs(ours["params_m"] - reference["params_m"]) * 1e6) == TINY["hidden_dim"]
    assert reference["best_vs_reference"] == 1.0
    assert result["rows"][1]["best_ms"] == ours["best_ms"]
    assert "vs ref" in capsys.readouterr().out


def test_ours_can_run_one_pass_per_framelet_against_the_reference_at_two(tmp_path, monkeypatch):
    """--ours_steps 1: ours runs one network pass per framelet (its keys become the context), the
    reference still two; the half-resolution smooth decoder is one more system."""
    passes = {"ours": 0, "ours_smooth_half": 0}
    from src.net.dit import VelodreamDiT

    counted = VelodreamDiT.forward_framelet

    def counting(model, *args, **kwargs):
        passes[model.bench_name] += 1
        return counted(model, *args, **kwargs)

    monkeypatch.setattr(VelodreamDiT, "forward_framelet", counting)
    original_build = equal_work.build_system

    def named_build(name, config):
        model, sampler = original_build(name, config)
        model.bench_name = name
        return model, sampler

    monkeypatch.setattr(equal_work, "build_system", named_build)
    config = EqualWorkConfig(
        **TINY,
        ours_steps=1,
        systems=["reference", "ours", "ours_smooth_half"],
        json_out=str(tmp_path / "e.json"),
    )
    result = run_and_report(config)
    # warm-up, the one framelet whose FLOPs are counted, then the timed ones
    framelets = config.warmup_framelets + 1 + config.rounds * config.framelets_per_round
    assert passes == {"ours": framelets, "ours_smooth_half": framelets}
    assert [row["system"] for row in result["rows"]] == ["reference", "ours", "ours_smooth_half"]
    assert result["config"]["ours_steps"] == 1 and result["config"]["steps"] == 2


def test_reference_attends_to_its_context():
    model = randomize(PlainCausalDiT(dim=32, blocks=2, heads=2, patch=4, frames=2, cond_channels=9), seed=0)
    generator = torch.Generator().manual_seed(1)
    x = [torch.randn(1, 2, 3, 8, 8, generator=generator) for _ in range(2)]
    cond = [torch.randn(1, 2, 9, 8, 8, generator=generator) for _ in range(2)]
    with torch.no_grad():
        _, first = model.denoise(x[0], cond[0], 0.5, None, 0)
        with_context, _ = model.denoise(x[1], cond[1], 0.5, first, 1)
        alone, _ = model.denoise(x[1], cond[1], 0.5, None, 1)
    assert not torch.allclose(with_context, alone)  # the context is attended to


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["--resolution", "100"],
            "error: resolution 100 is not a multiple of patch_size 16. pick a resolution that the patch size divides",
        ),
        (
            ["--ours_steps", "-1"],
            "error: steps 2 / ours_steps -1. give steps >= 1 and ours_steps >= 0 (0: the same as steps)",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, line, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--json_out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [line]
    assert not (tmp_path / "x").exists()


# -- the peer's own code, from a folder ------------------------------------------------------------

FAKE_PEER = {
    "src/__init__.py": "",
    "src/net/__init__.py": "",
    "src/net/configuring_net.py": """
from dataclasses import dataclass, field


@dataclass
class TransformerConfig:
    hidden_size: int = 8
    head_dim: int = 8


@dataclass
class ViTDenoiserConfig:
    input_size: int = 8
    condition_input_size: int | None = None
    num_blocks: int = 1
    mlp_choice: str = "unset"
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
""",
    "src/net/net.py": """
import torch

from src.net.configuring_net import ViTDenoiserConfig


class ViTDenoiser(torch.nn.Module):
    def __init__(self, config: ViTDenoiserConfig):
        super().__init__()
        self.config = config
        hidden = config.transformer.hidden_size
        self.proj_in = torch.nn.Linear(config.input_size + config.condition_input_size, hidden)
        self.proj_out = torch.nn.Linear(hidden, config.input_size)

    def forward(self, x, condition):
        return self.proj_out(self.proj_in(torch.cat([x, condition], -1)))
""",
    "src/net/flow_matching.py": """
class FlowMatchingHelper:
    def __init__(self, time_shift_dim: float = 1.0):
        self.time_shift_dim = time_shift_dim
""",
    # an outside package that is not installed, as the peer's optical-flow extractor's is
    "src/net/helpers.py": """
from velodream_absent_flow_package import FlowModel
from velodream_absent_flow_package.utils.padding import Padder

from src.net.flow_matching import FlowMatchingHelper
from src.net.net import ViTDenoiser


def generate(*, sample_shape, pixel_flow_matching_helper, pixel_denoiser, noise, patch_condition,
             patch_duration, patch_side_length, temporal_window_size, num_denoising_steps, kv_cache,
             kv_cache_length, cache_at_step, dtype):
    assert isinstance(pixel_flow_matching_helper, FlowMatchingHelper)
    assert isinstance(pixel_denoiser, ViTDenoiser) and cache_at_step is None
    tokens = noise.shape[2]
    x = noise
    for _ in range(num_denoising_steps):
        x = pixel_denoiser(x, patch_condition)
    kv_cache_length = min(kv_cache_length + tokens, temporal_window_size * tokens)
    return x, kv_cache, kv_cache_length
""",
    "conf/base.yaml": "conf:\n  pixel_denoiser:\n    num_blocks: 7\n    mlp_choice: gated\n",
}


def write_fake_peer(root):
    for relative, text in FAKE_PEER.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_peer_dir_runs_the_peers_own_code_beside_ours(tmp_path, capsys):
    import sys

    peer_dir = write_fake_peer(tmp_path / "peer")
    out = tmp_path / "equal.json"
    config = EqualWorkConfig(
        **TINY,
        systems=["ours"],
        peer_dir=str(peer_dir),
        peer_commit="abc123",
        json_out=str(out),
    )
    run_and_report(config)
    written = json.loads(out.read_text())
    assert [row["system"] for row in written["rows"]] == ["peer", "ours"]
    peer, ours = written["rows"]
    assert len(peer["ms_per_framelet_rounds"]) == 2 and peer["best_ms"] > 0
    # the fake's two linear layers at 4 tokens of 2 x 16 x 16 pixels (input 1536 + condition 1536)
    assert round(peer["params_m"] * 1e6) == (3072 * 32 + 32) + (32 * 1536 + 1536)
    assert round(peer["gflops_per_framelet"] * 1e9) == 2 * (2 * 4 * 3072 * 32 + 2 * 4 * 32 * 1536)  # 2 steps
    assert ours["gflops_per_framelet"] > 0 and peer["best_rate_vs_peer"] == 1.0
    assert ours["best_rate_vs_peer"] == peer["best_ms"] / ours["best_ms"]
    assert written["peer"]["commit"] == "abc123"
    assert written["peer"]["stubbed_imports"] == [
        "velodream_absent_flow_package",
        "velodream_absent_flow_package.utils",
        "velodream_absent_flow_package.utils.padding",
    ]
    # the benchmark sets the shapes; the peer's base config keeps its other choices
    assert written["peer"]["model_config"]["num_blocks"] == 2
    assert written["peer"]["model_config"]["mlp_choice"] == "gated"
    table = capsys.readouterr().out
    assert "x peer" in table and "commit abc123" in table and "velodream_absent_flow_package" in table
    # our own package is back in place, and no stub is left behind
    assert sys.modules["src.net.dit"].VelodreamDiT is equal_work.VelodreamDiT
    assert "helpers.py" not in str(getattr(sys.modules.get("src.net.helpers"), "__file__", ""))
    assert not any(name.startswith("velodream_absent") for name in sys.modules)


@pytest.mark.parametrize(
    ("make", "argv", "line"),
    [
        (
            None,
            ["--peer_dir", "DIR/missing"],
            "error: --peer_dir DIR/missing is not a folder. Unpack the peer's snapshot there: "
            "mkdir -p DIR/missing && git --git-dir=<its git folder> archive HEAD | tar -x -C DIR/missing",
        ),
        (
            "empty",
            [
                "--peer_dir",
                "DIR/empty",
                *("--resolution 32 --hidden_dim 32 --num_blocks 2 --num_heads 2".split()),
            ],
            "error: --peer_dir DIR/empty does not hold the peer's code (no src/net/helpers.py, src/net/net.py, "
            "src/net/configuring_net.py, src/net/flow_matching.py). Give the root of an unpacked Spokester1 snapshot.",
        ),
        (
            None,
            ["--systems", "[peer, ours]"],
            "error: the peer system needs the peer's code. Pass --peer_dir with an unpacked snapshot of its repository.",
        ),
    ],
)
def test_a_missing_or_wrong_peer_dir_is_one_line(make, argv, line, tmp_path, capsys):
    if make:
        (tmp_path / make).mkdir()
    argv = [arg.replace("DIR", str(tmp_path)) for arg in argv]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--json_out", str(tmp_path / "x.json")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [line.replace("DIR", str(tmp_path))]
    assert not (tmp_path / "x.json").exists()


def test_the_lighter_block_is_timed_beside_ours_with_fewer_parameters(tmp_path):
    hidden = 128  # above the rank-64 condition embedding
    config = EqualWorkConfig(
        **{**TINY, "hidden_dim": hidden}, systems=["ours", "ours_light"], json_out=str(tmp_path / "e.json")
    )
    rows = {row["system"]: row for row in run_and_report(config)["rows"]}
    assert rows["ours_light"]["params_m"] < rows["ours"]["params_m"]
    assert rows["ours_light"]["gflops_per_framelet"] <= rows["ours"]["gflops_per_framelet"]
    assert all(ms > 0 for ms in rows["ours_light"]["ms_per_framelet_rounds"])
