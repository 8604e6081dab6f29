"""bench_equal_work runs both systems at the same shapes, writes its JSON, and refuses bad input in
one line; the plain reference's cached generation equals its own full causal forward."""

from __future__ import annotations

import json

import pytest
import torch

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


def test_bad_resolution_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--resolution", "100", "--json_out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: resolution 100 is not a multiple of patch_size 16. pick a resolution that the patch size divides"
    ]
    assert not (tmp_path / "x").exists()
