"""A refusal that the arguments alone decide comes in about a second: before torch loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "cv2", "av", "accelerate", "diffusers")


@pytest.mark.parametrize(
    "script, args, message",
    [
        (
            "evaluate",
            ["--data", "DIR", "--split", "nonsense"],
            "unknown --split 'nonsense'. Use train, val, all.",
        ),
        (
            "evaluate",
            ["--data", "DIR", "--clip_frames", "3"],
            "--clip_frames must be a positive multiple of 2",
        ),
        ("evaluate", ["--data", "DIR", "--game_frames", "100000000"], "game_frames must be >= 0 and <= 4096"),
        ("evaluate", ["--data", "DIR", "--drift_ride_frames", "8", "--game_frames", "6"], "at least twice"),
        ("bench_realism_floor", ["--others", "DIR", "--split", "some"], "unknown --split 'some'"),
        ("bench_realism_floor", [], "needs real footage of other places"),
        (
            "train_net",
            ["--mixed_precision", "fp8"],
            "unknown --mixed_precision 'fp8'. Use auto, no, bf16, fp16.",
        ),
        ("prepare_data", ["--out", "DIR/x"], "no videos given"),
        (
            "bench_equal_work",
            ["--systems", "ours", "bogus"],
            "unknown --systems 'bogus'. Use reference, ours,",
        ),
        ("bench_equal_work", ["--peer_dir", "DIR/none"], "none is not a folder"),
    ],
)
def test_an_argument_refusal_loads_no_heavy_library(script, args, message, tmp_path):
    args = [str(tmp_path) if arg == "DIR" else arg.replace("DIR", str(tmp_path)) for arg in args]
    code = (
        "import sys\n"
        f"from src.scripts.{script} import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exit:\n"
        f"    print('exit', exit.code, sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "exit 2 []", done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written
