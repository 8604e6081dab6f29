"""bench_realism_floor: real footage of another place scored against a reference clip, beside
the reference's own two halves (the floor), on real videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from src.common.errors import UserError
from src.common.video import write_mp4
from src.data.config import DecodeConfig
from src.data.decode import decode_video
from src.data.sources import find_embedded_file

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def _short_clip(source: Path, out: Path, seconds: float) -> Path:
    frames = decode_video(source, DecodeConfig(resolution="32x32", fps=8.0, end_s=seconds))
    assert frames.shape[0] == round(8 * seconds) and frames.dtype == np.uint8
    return write_mp4(out, frames, fps=8.0)


@pytest.mark.slow
def test_another_place_is_further_from_the_reference_than_the_reference_from_itself(tmp_path, capsys):
    from src.scripts.bench_realism_floor import main

    if not VTEST.is_file():
        pytest.skip("opencv-doc's vtest.avi is not installed (.ci/run installs it)")
    street = _short_clip(find_embedded_file("bikes.mp4"), tmp_path / "street.mp4", 1.0)
    mall = _short_clip(VTEST, tmp_path / "mall.mp4", 1.0)
    out = tmp_path / "floor.json"
    main([
        "--reference", str(street), "--others", str(mall), "--resolution", "32x32", "--fps", "8",
        "--clip_frames", "4", "--frames_per_set", "8", "--cache_dir", str(tmp_path / "cache"),
        "--json_out", str(out),
    ])  # fmt: skip
    result = json.loads(out.read_text())
    assert result["reference_frames"] == 8 and result["resolution"] == "32x32"
    floor, mall_row = result["sets"]["reference (first half)"], result["sets"]["mall.mp4 (1 videos)"]
    assert floor["frames"] == 4 and floor["against_frames"] == 4
    assert mall_row["frames"] == 8 and mall_row["against_frames"] == 8
    # the street clip's two halves are the same place; the shopping mall is not (SWD is in the
    # JSON too, but 7x7 patches of 32-px frames are too few for it to tell places apart)
    assert mall_row["kid"] > floor["kid"] + 0.1, result["sets"]
    assert mall_row["swd"] > 0 and floor["swd"] > 0
    assert "mall.mp4 (1 videos)" in capsys.readouterr().out


def test_a_reference_among_the_others_is_left_out_and_nothing_left_is_one_clear_error(tiny_dataset, tmp_path):
    from src.bench.realism_floor import BenchRealismFloorConfig, run_bench_realism_floor_and_report

    config = BenchRealismFloorConfig(
        reference=str(tiny_dataset), others=[str(tiny_dataset)], json_out=str(tmp_path / "x.json")
    )
    with pytest.raises(UserError, match="no video apart from the reference"):
        run_bench_realism_floor_and_report(config)
    with pytest.raises(UserError, match="--others"):
        run_bench_realism_floor_and_report(BenchRealismFloorConfig(reference=str(tiny_dataset)))
    assert not (tmp_path / "x.json").exists()
    assert find_embedded_file("bikes.mp4").is_file()  # the reference is the real street clip
