"""``evaluate --reference``: the game ride judged against held-out footage of its own place too,
with new keys beside the old ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from src.eval.evaluate import REQUIRED_KEYS
from src.eval.reference import REFERENCE_KEYS, ride_columns


def _evaluate(package, data, out: Path, *extra: str) -> dict:
    from src.scripts.evaluate import main

    main([
        "--checkpoint", str(package), "--data", str(data), "--split", "all", "--clip_frames", "8",
        "--game_frames", "4", "--renderer", "FlatColorRenderer", "--feature_metrics", "false",
        "--cache_dir", str(out.parent / "cache"), "--out", str(out), *extra,
    ])  # fmt: skip
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_the_reference_keys_score_the_ride_as_the_real_keys_do_on_the_same_frames(
    flat_package, tiny_dataset, tmp_path
):
    judged = _evaluate(flat_package, tiny_dataset, tmp_path / "judged", "--reference", str(tiny_dataset))
    assert set(REQUIRED_KEYS) <= set(judged) and set(REFERENCE_KEYS) <= set(judged)
    # the reference is the same 32 frames as --data here: the same distances
    assert judged["num_reference_frames"] == judged["num_real_frames"] == 32
    assert judged["game_swd_to_reference"] == pytest.approx(judged["game_swd_to_real"], rel=1e-4)
    assert judged["game_raster_swd_to_reference"] == pytest.approx(
        judged["game_raster_swd_to_real"], rel=1e-4
    )
    assert judged["game_kid_to_reference"] is None  # feature metrics off


def test_a_missing_reference_is_one_line(flat_package, tiny_dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        _evaluate(flat_package, tiny_dataset, tmp_path / "o", "--reference", str(tmp_path / "nowhere"))
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()  # before any clip is rendered
    assert len(err) == 1 and "--reference" in err[0] and "city_street_pandaset002_back_reversed" in err[0]


def test_the_ride_columns_are_the_rendered_and_raster_thirds():
    from src.eval.scoring import grid_video

    flat, rendered, raster = (torch.full((3, 3, 4, 5), value) for value in (-1.0, 0.0, 1.0))
    video = grid_video([flat, rendered, raster])
    got_rendered, got_raster = ride_columns(video, frames=2)
    assert got_rendered.shape == (2, 3, 4, 5)
    assert np.allclose(got_rendered, 0.5, atol=1 / 255) and np.allclose(got_raster, 1.0)
