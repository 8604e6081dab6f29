"""The README's commands run end to end, as a user runs them on a fresh clone: each in a fresh
process, in the order the README gives them, at a tiny size.

``test_readme.py`` parses every command in-process; this file runs them for real, because an
import order that pytest's process hides can crash a command (the game's EGL context followed by
triton's import did, in ``visualize_conditions`` and in every run that renders game clips before
its optimiser loads). Each command is written here as the README prints it, and the test checks
that the README still does; only the size flags appended after it are the test's own. The
commands that need a user's own video (``data/real_videos``), a network or a GPU are left to the
parsing test.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = "{hidden_dim: 32, num_blocks: 1, num_heads: 2, stem_channels: 8, refine_channels: 8}"
TINY_TRAIN = [
    "--max_steps", "1", "--data.crop", "[32, 32]", "--data.batch_size", "1",
    "--model.overrides", TINY_MODEL, "--validation.enabled", "false",
]  # fmt: skip
TINY_RIDE = ["--headless", "--autopilot", "--frames", "2"]
TINY_STUDENT = [
    "--max_steps", "1", "--data.crop", "[32, 32]", "--data.batch_size", "1", "--data.clip_frames", "2",
    "--model.preset", "tiny", "--student.game_clips_per_batch", "1", "--validation.enabled", "false",
]  # fmt: skip

# (the command as the README prints it, the size flags this test appends, what it must leave)
COMMANDS = [
    (
        "uv run play_game --renderer raster --headless --autopilot --frames 300 --record runs/raster.mp4 "
        "--record_gbuffers runs/raster_gbuffers --resolution 320x240 --seed 3",
        ["--frames", "3", "--resolution", "64x48"],
        ["runs/raster.mp4", "runs/raster_gbuffers/meta.json"],
    ),
    (
        "uv run python -m src.scripts.play_game --headless --autopilot --frames 300 --record ride.mp4",
        ["--frames", "2"],
        ["ride.mp4"],
    ),
    (
        "uv run play_game --headless --autopilot --frames 240 --record runs/ride.mp4 "
        "--record_side_by_side runs/ride_sbs.mp4",
        ["--frames", "2"],
        ["runs/ride.mp4", "runs/ride_sbs.mp4"],
    ),
    ("uv run play_game --renderer dit --steps 2", TINY_RIDE, []),
    (
        "uv run python -m src.scripts.prepare_data --defaults --out data/prepared/default",
        ["--resolution", "32x32", "--fps", "4", "--end_s", "3", "--shard_frames", "16"],
        ["data/prepared/default/manifest.json"],
    ),
    (
        "uv run visualize_conditions",
        ["--conf.frames", "4", "--conf.resolution", "64x64", "--conf.gap.steps", "3"],
        ["runs/visualize_conditions/domain_gap.json", "runs/visualize_conditions/conditions_grid.png"],
    ),
    (
        "uv run python -m src.scripts.train_net --conf conf/base.yaml --conf conf/cpu_tiny.yaml",
        TINY_TRAIN,
        ["runs/cpu_tiny/package/model.safetensors"],
    ),
    (
        "uv run python -m src.scripts.play_game --checkpoint runs/cpu_tiny/package",
        TINY_RIDE,
        [],
    ),
    (
        "uv run python -m src.scripts.export_package runs/cpu_tiny --out game/models/mine",
        [],
        ["game/models/mine/model.safetensors"],
    ),
    (
        "uv run python -m src.scripts.baseline_package --data data/prepared/default --out runs/flat_color",
        [],
        ["runs/flat_color/config.json"],
    ),
    (
        "uv run python -m src.scripts.train_net --conf conf/base.yaml --conf conf/cpu_tiny.yaml "
        "--conf conf/distill_cpu.yaml --init_from runs/cpu_tiny --teacher runs/cpu_tiny",
        [*TINY_TRAIN, "--distill.game_clips_per_batch", "1"],
        ["runs/distill_cpu/package/model.safetensors"],
    ),
    (
        "uv run train_net --conf conf/base.yaml --conf conf/student_cpu.yaml --teacher runs/distill_cpu",
        TINY_STUDENT,
        ["runs/student_cpu/package/model.safetensors"],
    ),
]


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """A folder laid out like a fresh clone (the repository's conf/ and game/ beside an empty
    runs/ and data/), in which the commands run."""
    folder = tmp_path_factory.mktemp("clone")
    (folder / "conf").symlink_to(ROOT / "conf")
    (folder / "game" / "models").mkdir(parents=True)
    for name in ("shaders", "levels", "models/default"):
        (folder / "game" / name).symlink_to(ROOT / "game" / name)
    return folder


def _run(command: str, extra: list[str], cwd: Path) -> subprocess.CompletedProcess:
    words = shlex.split(command)
    assert words[:2] == ["uv", "run"]
    args = words[2:]
    module = ["-m", args[2]] if args[:2] == ["python", "-m"] else ["-m", f"src.scripts.{args[0]}"]
    rest = args[3:] if args[:2] == ["python", "-m"] else args[1:]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SDL_VIDEODRIVER": "dummy", "TQDM_DISABLE": "1"}
    return subprocess.run(
        [sys.executable, *module, *rest, *extra],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_every_command_here_is_in_the_readme():
    readme = " ".join((ROOT / "README.md").read_text().split())
    for command, _, _ in COMMANDS:
        short = command.replace("uv run python -m src.scripts.", "uv run ")
        assert command in readme or short in readme, f"the README no longer shows: {command}"


@pytest.mark.slow
@pytest.mark.parametrize(("command", "extra", "leaves"), COMMANDS, ids=[c[0][7:60] for c in COMMANDS])
def test_readme_command_runs_in_a_fresh_process(command, extra, leaves, fresh_clone):
    done = _run(command, extra, fresh_clone)
    assert done.returncode == 0, (
        f"{command} exited {done.returncode}:\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"
    )
    for path in leaves:
        assert (fresh_clone / path).is_file(), f"{command} did not write {path}"
