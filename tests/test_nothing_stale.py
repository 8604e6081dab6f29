"""Nothing stale: ncnn exports and prepared videos are keyed on content, rotated phone clips come out
upright, a mistyped dataset is not filled with the embedded clips, one run folder has one trainer,
and a resumed run's log holds each step once."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from src.common.errors import UserError
from src.common.video import write_mp4

ROOT = Path(__file__).resolve().parents[1]


def _frames(num: int, width: int = 64, height: int = 32) -> np.ndarray:
    """Frames whose left half is red and right half dark, with a little moving texture."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 40, (num, height, width, 3), dtype=np.uint8)
    frames[:, :, : width // 2, 0] = 250
    return frames


def _rotate_display(path: Path) -> Path:
    """Write into the mp4's track header the display matrix a phone writes for a quarter turn
    (ffmpeg reads it as rotation -90: shown turned 90 degrees clockwise)."""
    data = bytearray(path.read_bytes())
    box = data.find(b"tkhd")
    version = data[box + 4]
    matrix = box + 8 + (32 if version == 1 else 20) + 16  # after the times, duration and reserved fields
    data[matrix : matrix + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path


def test_a_rotated_phone_clip_is_decoded_upright(tmp_path):
    import av

    from src.data.decode import DecodeConfig, decode_video, iter_source_frames

    clip = _rotate_display(write_mp4(tmp_path / "phone.mp4", _frames(6), fps=10))
    with av.open(str(clip)) as container:
        assert next(container.decode(video=0)).rotation == -90  # the file really carries the rotation
    _, frame = next(iter_source_frames(clip))
    assert frame.shape == (64, 32, 3)  # portrait, as shown
    assert frame[:28, :, 0].mean() > 200 and frame[36:, :, 0].mean() < 80  # the red left half is now on top
    frames = decode_video(clip, DecodeConfig(fps=10, resolution="16x32", val_fraction=0.0))
    assert frames.shape[1:] == (32, 16, 3) and frames[0, :12, :, 0].mean() > 200


def test_a_video_fetched_again_at_the_same_path_is_prepared_again(tmp_path, capsys):
    from src.data.prepare import PrepareConfig, prepare_dataset

    video = tmp_path / "ride.mp4"
    write_mp4(video, _frames(8), fps=8)  # the truncated download
    config = PrepareConfig(
        videos=[str(video)], out=str(tmp_path / "data"), resolution="32x16", fps=8, val_fraction=0.25
    )
    assert prepare_dataset(config)["videos"][0]["num_frames"] == 8
    prepare_dataset(config)  # unchanged: resumed from its record
    assert "changed since" not in capsys.readouterr().err
    write_mp4(video, _frames(20), fps=8)  # fetched again in full, same path
    os.utime(video, ns=(0, 0))
    manifest = prepare_dataset(config)
    assert manifest["videos"][0]["num_frames"] == 20
    assert f"{video} changed since it was prepared" in capsys.readouterr().err
    os.utime(video, ns=(10**9, 10**9))  # touched, same content: the hash says it is the same video
    assert prepare_dataset(config)["videos"][0]["num_frames"] == 20
    assert "changed since" not in capsys.readouterr().err


def test_an_ncnn_export_follows_the_weights_it_came_from(tmp_path, capsys, monkeypatch):
    """pnnx itself is left out (tests/test_export_ncnn.py runs it): the stand-in export writes the
    weights it was given, which is what tells a stale export from a fresh one."""
    from safetensors.torch import load_file, save_file

    from src.runtime import ncnn_backend
    from src.runtime.package import load_package
    from tests.test_output_folders import _package

    def export_weights(model, out_dir, height, width, *, name):
        paths = {
            "param": out_dir / f"{name}.ncnn.param",
            "bin": out_dir / f"{name}.ncnn.bin",
            "shapes": out_dir / f"{name}.json",
        }
        paths["param"].write_text("7767517\n")
        paths["bin"].write_bytes(b"".join(p.detach().numpy().tobytes() for p in model.parameters()))
        paths["shapes"].write_text("{}")
        (out_dir / "pnnx_intermediate.onnx").write_text("dropped")
        return paths

    monkeypatch.setattr(ncnn_backend, "export_step_ncnn", export_weights)
    directory = _package(tmp_path / "student")
    param, weights, _ = ncnn_backend.ensure_export(load_package(directory), 32, 48)
    first = weights.read_bytes()
    assert sorted(p.name for p in param.parent.iterdir()) == sorted(
        [".velodream-output.json", "source.json", param.name, weights.name, "recurrent_step.json"]
    )
    assert ncnn_backend.ensure_export(load_package(directory), 32, 48)[1].read_bytes() == first  # kept
    assert "other weights" not in capsys.readouterr().out
    state = load_file(directory / "model.safetensors")  # a git pull changes the weights in place
    save_file(
        {k: v + 0.5 if v.is_floating_point() else v for k, v in state.items()},
        directory / "model.safetensors",
    )
    param, weights, _ = ncnn_backend.ensure_export(load_package(directory), 32, 48)
    assert "was made from other weights or config: exporting again" in capsys.readouterr().out
    assert weights.read_bytes() != first
    assert (
        weights.read_bytes()
        == export_weights(load_package(directory).model, tmp_path, 32, 48, name="x")["bin"].read_bytes()
    )


def test_a_mistyped_dataset_is_one_line_not_the_embedded_clips(tmp_path):
    from src.common.config import load_config
    from src.train import auto_data
    from src.train.config import TrainConfig

    typo = tmp_path / "data" / "prepraed" / "default"
    config = load_config(TrainConfig, ROOT / "conf/base.yaml", ROOT / "conf/cpu_tiny.yaml",
                         overrides=["--data.dataset", str(typo)])  # fmt: skip
    with pytest.raises(UserError, match=f"no prepared dataset at {typo}.*only into data/prepared/default"):
        auto_data.prepare_defaults_if_missing(config)
    assert not typo.exists() and not (tmp_path / "data").exists()


def test_a_second_trainer_on_one_run_gets_one_line_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    from src.train.run_folder import LOCK_FILE, lock_run_folder, release_run_folder

    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); "
         "from src.train.run_folder import lock_run_folder; lock = lock_run_folder(sys.argv[2]); print('held', flush=True); "
         "time.sleep(60)", str(ROOT), str(run)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            UserError, match=f"the run {run} is in use by another train_net \\(pid {holder.pid} on "
        ):
            lock_run_folder(run)
    finally:
        holder.kill()
        holder.wait()
    # the holder died without cleaning up: its lock file is still there, and stale
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == holder.pid
    lock = lock_run_folder(run)
    assert f"taking over the stale lock of {run} (pid {holder.pid}" in capsys.readouterr().out
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == os.getpid()
    release_run_folder(lock)
    lock_run_folder(run).close()  # released: taken again without a word
    assert "stale" not in capsys.readouterr().out


def test_a_resumed_run_drops_the_log_records_past_its_checkpoint(tmp_path):
    from src.train.run_folder import drop_log_records_after

    log = tmp_path / "logs.jsonl"
    records = [{"step": s, "kind": "train"} for s in (2, 4, 6, 8)] + [{"step": 4, "kind": "validation"}]
    log.write_text(
        "".join(json.dumps(r) + "\n" for r in records) + '{"step": 10, "ki'
    )  # cut off by the crash
    assert drop_log_records_after(tmp_path, 4) == 3
    assert [json.loads(line) for line in log.read_text().splitlines()] == [records[0], records[1], records[4]]
    assert drop_log_records_after(tmp_path, 4) == 0


def test_evaluate_clamps_num_clips_to_the_clips_there_are(tiny_dataset, capsys):
    from src.conditions.spec import ConditionSpec
    from src.eval.scoring import load_real_clips

    torch.manual_seed(0)
    clips = load_real_clips(
        tiny_dataset, split="val", clip_frames=4, num_clips=1000, spec=ConditionSpec(), stats=None
    )
    # 8 held-out frames: 5 distinct 4-frame clips
    assert len(clips) == 5 and len({int(c["start"]) for c in clips}) == 5
    assert "holds 5 distinct 4-frame clip(s), not 1000: using 5" in capsys.readouterr().out


def test_a_game_clip_recorded_by_another_version_of_the_game_is_recorded_again(tmp_path):
    """visualize_conditions and the realism checks reuse a recorded ride only if today's game
    (its code, shaders, levels and palette: ``game_digest``) recorded it."""
    import json

    from src.game.recording import record_autopilot_clip
    from src.game.version import game_digest

    clip = record_autopilot_clip(tmp_path / "ride", width=32, height=24, frames=2, seed=3, fps=10)
    meta = json.loads((clip / "meta.json").read_text())
    assert meta["game_digest"] == game_digest()
    first = (clip / "meta.json").stat().st_mtime_ns
    record_autopilot_clip(clip, width=32, height=24, frames=2, seed=3, fps=10)
    assert (clip / "meta.json").stat().st_mtime_ns == first  # today's: reused
    meta["game_digest"] = "an older game"
    (clip / "meta.json").write_text(json.dumps(meta))
    record_autopilot_clip(clip, width=32, height=24, frames=2, seed=3, fps=10)
    assert json.loads((clip / "meta.json").read_text())["game_digest"] == game_digest()
