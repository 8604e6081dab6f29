"""The leave-one-clip-out benchmark runs end to end on two very short clips: for each clip it
trains the DiT and the regression baseline on the other, and evaluates them and the flat baseline
on it; the table, the JSON and every model's evaluation are on disk, and a re-run keeps them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY_DIT = """\
model:
  overrides: {hidden_dim: 32, num_blocks: 1, num_heads: 2, stem_channels: 8, refine_channels: 8,
              window_framelets: 2, max_grid_h: 8, max_grid_w: 8}
data: {crop: [32, 32], batch_size: 2}
"""


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory):
    """Two seconds each of the two embedded street clips, at 48x32 and 8 fps."""
    from src.common.video import write_mp4
    from src.data.decode import DecodeConfig, decode_video
    from src.data.sources import find_embedded_file

    folder = tmp_path_factory.mktemp("clips")
    for name in ("bikes.mp4", "vtest.avi"):
        frames = decode_video(
            find_embedded_file(name), DecodeConfig(resolution="48x32", fps=8.0, max_frames=16)
        )
        write_mp4(folder / f"{Path(name).stem}.mp4", frames, fps=8.0)
    return sorted(folder.iterdir())


def bench(*args: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "src.scripts.bench_generalisation", *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.training
def test_leave_one_clip_out_end_to_end(two_clips, tmp_path):
    preset = tmp_path / "tiny.yaml"
    preset.write_text(TINY_DIT)
    args = [
        "--videos",
        *map(str, two_clips),
        "--train_conf",
        "conf/base.yaml",
        "conf/cpu_tiny.yaml",
        str(preset),
        "--max_steps",
        "2",
        "--regression_max_steps",
        "2",
        "--resolution",
        "32x32",
        "--fps",
        "8",
        "--clip_frames",
        "8",
        "--game_frames",
        "4",
        "--num_threads",
        "1",
    ]
    done = bench(*args, out=tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert sorted(results["folds"]) == ["bikes", "vtest"]
    for name, fold in results["folds"].items():
        assert [Path(v).stem for v in fold["train_videos"]] == [n for n in ("bikes", "vtest") if n != name]
        # the regression gets the DiT's training time, up to its 2 steps (a busy machine may stop it after 1)
        assert fold["training"]["dit"]["steps"] == 2 and 1 <= fold["training"]["regression"]["steps"] <= 2
        for model in ("dit", "regression", "flat"):
            metrics = fold["metrics"][model]
            assert metrics["num_real_clips"] == 2 and metrics["game_swd_to_real"] is not None
            assert (tmp_path / "out" / name / f"eval-{model}" / "real.png").is_file()
        flat = fold["metrics"]["flat"]
        assert flat["real_psnr"] == flat["real_flat_psnr"]
        # the flat baseline scores its own input; the untrained-enough nets start from it too
        assert fold["metrics"]["dit"]["real_flat_psnr"] == flat["real_flat_psnr"]
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| bikes | dit (2 steps" in table and "| vtest | flat |" in table and "real_seam_ratio" in table
    assert "real_swd" in done.stdout and "game raster" in done.stdout

    # a re-run of one fold keeps what is done
    again = bench(*args, "--only", "vtest", out=tmp_path / "out")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "out" / "results.json").read_text())["folds"] == results["folds"] | {
        "vtest": {
            **results["folds"]["vtest"],
            "seconds": json.loads((tmp_path / "out" / "results.json").read_text())["folds"]["vtest"][
                "seconds"
            ],
        }
    }

    # --regression false (a DiT lever tried quickly) keeps the fold's earlier regression numbers
    quick = bench(*args, "--only", "vtest", "--regression", "false", out=tmp_path / "out")
    assert quick.returncode == 0, quick.stderr[-3000:]
    fold = json.loads((tmp_path / "out" / "results.json").read_text())["folds"]["vtest"]
    assert fold["metrics"]["regression"] == results["folds"]["vtest"]["metrics"]["regression"]
    assert "train regression" not in quick.stderr


def test_only_names_one_clip():
    from src.bench.generalisation import select_folds
    from src.common.errors import UserError

    videos = [Path("/x/bikes.mp4"), Path("/x/vtest.avi"), Path("/y/highway_ride_udacity_part1.mp4")]
    assert select_folds(videos, "highway") == [videos[2]]
    assert select_folds(videos, "vtest.avi") == [videos[1]]
    assert select_folds(videos, None) == videos
    with pytest.raises(UserError, match="matches 0"):
        select_folds(videos, "nothing")
