"""bench_data: loader throughput per worker count on a real prepared clip, and the FLOP count."""

from __future__ import annotations

import json

import pytest

from src.bench.data_throughput import BenchDataConfig, format_report, run_benchmark

TINY_PRESET = """
model:
  preset: tiny
  overrides: {hidden_dim: 64, num_blocks: 2, num_heads: 2, stem_channels: 8, refine_channels: 8}
data:
  clip_frames: 4
  crop: [32, 32]
  batch_size: 2
"""


@pytest.mark.slow
def test_bench_data_times_each_worker_count_and_counts_the_model_flops(tiny_dataset, tmp_path):
    preset = tmp_path / "tiny.yaml"
    preset.write_text(TINY_PRESET)
    out = tmp_path / "bench.json"
    config = BenchDataConfig(
        dataset=str(tiny_dataset), presets=["conf/base.yaml", str(preset)], workers=[0, 1],
        batches=3, warmup_batches=1, out=str(out),
    )  # fmt: skip
    report = run_benchmark(config)
    assert json.loads(out.read_text()) == report
    rows = report["loader"]  # each worker count reading only, then reading + encoding on the CPU
    assert [row["num_workers"] for row in rows] == [0, 1, 0, 1]
    assert [row["stage"] == "read" for row in rows] == [True, True, False, False]
    for row in rows:
        assert (row["batch_size"], row["clip_frames"], row["frame_size"]) == (2, 4, [32, 32])
        assert row["clips_per_s"] > 0
        assert row["frames_per_s"] == pytest.approx(4 * row["clips_per_s"])
    stages = report["stages"]
    assert stages["read_ms_per_frame"] > 0 and stages["encode_augment_ms_per_frame"] > 0
    flops = report["flops"]
    assert flops["training_flops_per_clip"] == 3 * flops["forward_flops_per_clip"]
    # at least the transformer's linear layers: 24 D^2 FLOPs per token per block (qkv 3, out 1,
    # MLP 8 multiply-adds per D^2), 2 framelets x (32/8)^2 tokens, 2 blocks of width 64
    assert flops["forward_flops_per_clip"] >= 24 * 64**2 * (2 * 16) * 2
    assert "| 1 | read | 2 | 4 | 32x32 |" in format_report(report)
