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
    framelets = config.warmup_framelets + config.rounds * config.framelets_per_round
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
