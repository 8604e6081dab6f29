"""A run's curves PNG from a synthetic logs.jsonl."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from src.common.errors import UserError
from src.eval.curves import plot_run_curves, read_run_series


def _write_logs(run_dir, records: list[dict], *, torn_last_line: bool = False) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(record) + "\n" for record in records)
    if torn_last_line:
        text += '{"step": 99, "kind": "tra'  # a run killed while writing
    (run_dir / "logs.jsonl").write_text(text)


def _synthetic_records() -> list[dict]:
    records = []
    for step in range(10, 210, 10):
        records.append({"step": step, "kind": "train", "loss": 1.0 / step, "lr": 3e-4, "grad_norm": 0.5})
    for step in (100, 200):
        records.append(
            {"step": step, "kind": "validation", "real_psnr": 20.0 + step / 100, "game_swd_to_real": 300.0}
        )
    records.append({"step": 150, "kind": "ranks", "agree": True})
    records.append({"step": 100, "kind": "validation", "real_psnr": 21.5})  # a resumed run re-logged
    return records


def test_series_skip_other_kinds_and_torn_lines_and_keep_the_latest_value(tmp_path):
    _write_logs(tmp_path, _synthetic_records(), torn_last_line=True)
    series = read_run_series(tmp_path / "logs.jsonl")
    assert sorted(series) == [
        "train/loss",
        "train/lr",
        "validation/game_swd_to_real",
        "validation/real_psnr",
    ]
    steps, values = series["validation/real_psnr"]
    assert steps == [100, 200] and values == [21.5, 22.0]
    assert len(series["train/loss"][0]) == 20


def test_plot_run_curves_writes_a_png_atomically(tmp_path):
    run_dir = tmp_path / "runs" / "tiny"
    _write_logs(run_dir, _synthetic_records())
    path = plot_run_curves(run_dir)
    assert path == run_dir / "curves.png"
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[0] > 100 and image.shape[1] > 400  # four subplots side by side
    assert image.std() > 10  # something was drawn
    assert sorted(p.name for p in run_dir.iterdir()) == ["curves.png", "logs.jsonl"]  # no temp files
    _write_logs(run_dir, _synthetic_records()[:3])  # earlier in a run: only training records
    assert plot_run_curves(run_dir) == path and Image.open(path).size != image.shape[1::-1]


def test_plot_run_curves_names_a_folder_without_logs(tmp_path):
    with pytest.raises(UserError, match="logs.jsonl"):
        plot_run_curves(tmp_path)
