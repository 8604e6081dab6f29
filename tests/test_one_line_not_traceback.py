"""Damaged inputs and unusable places are one line (exit 2) with nothing half-written left, and
what used to go silently wrong is refused or said: the third probe's cases, one per family."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src.common.errors import UserError, script_main
from src.data.prepared import memory_map_shard, read_manifest, shard_is_complete
from src.net.student import build_student
from src.runtime.package import load_package
from tests.test_output_folders import _package

ROOT = Path(__file__).resolve().parents[1]
USER_BYTES = b"a user's file \x00\xff"


def test_an_unusable_output_place_is_one_line_before_the_work(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_bytes(USER_BYTES)
    done = subprocess.run(
        [sys.executable, "-m", "src.scripts.bench_game", "--json_out", str(blocker / "x.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "a file is where a folder is needed" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""  # refused before the benchmark ran
    assert blocker.read_bytes() == USER_BYTES


def test_an_os_error_about_a_path_is_one_line(capsys):
    @script_main
    def command():
        raise PermissionError(errno.EACCES, "Permission denied", "/srv/runs/x")

    with pytest.raises(SystemExit) as exit_info:
        command()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot use /srv/runs/x: Permission denied" in err

    @script_main
    def bug():
        raise OSError(errno.EBADF, "Bad file descriptor")  # not about a place the user chose: a bug

    with pytest.raises(OSError):
        bug()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--world.building_height_range_m", "[45, 7]"], "low end is above the high end"),
        (["--camera.near_m", "700"], "near_m must be below far_m"),
    ],
)
def test_an_inverted_range_is_one_line(args, message):
    from src.common.config import parse_config
    from src.game.config import PlayConfig

    with pytest.raises(UserError, match=message):
        parse_config(PlayConfig, ["--renderer", "raster", *args])


@pytest.mark.parametrize("source", ["hf://owner/bad--name", "hf://owner/.hidden", "hf://-owner/x"])
def test_an_invalid_hub_id_is_one_line(source, tmp_path):
    from src.play.fetch import resolve_checkpoint

    with pytest.raises(UserError, match="invalid hub source"):
        resolve_checkpoint(source, cache_dir=tmp_path, offline=True)


def test_a_bundle_that_points_at_itself_is_one_line(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "renderers.json").write_text(
        json.dumps({"format_version": 1, "default": "x", "renderers": {"x": "."}})
    )
    with pytest.raises(UserError, match="not a sub-folder"):
        load_package(bundle)


def test_nan_weights_are_refused_when_loading(tmp_path):
    model = build_student("tiny")
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    directory = _package(tmp_path / "nan", model=model)
    with pytest.raises(UserError, match="NaN or infinite weights"):
        load_package(directory)


def test_a_truncated_init_from_is_one_line(tmp_path):
    from src.train.model_io import load_weights_from

    directory = _package(tmp_path / "pkg")
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load_weights_from(build_student("tiny"), directory)


class _Accelerator:
    """Stands in for accelerate's: ``load_state`` of a damaged checkpoint raises as torch does."""

    def __init__(self, damaged: set[str]):
        self.damaged, self.loaded = damaged, []

    def load_state(self, folder: str) -> None:
        if Path(folder).name in self.damaged:
            raise RuntimeError(
                "PytorchStreamReader failed reading zip archive: failed finding central directory"
            )
        self.loaded.append(Path(folder).name)


def test_resume_passes_over_a_damaged_checkpoint_and_says_so(tmp_path, capsys):
    from src.train.checkpoint import COMPLETE_MARKER, load_newest_readable_state

    for step in (2, 4):
        folder = tmp_path / "checkpoints" / f"step-{step:07d}"
        folder.mkdir(parents=True)
        (folder / COMPLETE_MARKER).write_text("{}")
    accelerator = _Accelerator({"step-0000004"})
    step, folder = load_newest_readable_state(accelerator, tmp_path, True)
    assert step == 2 and accelerator.loaded == ["step-0000002"]
    assert "step-0000004 cannot be read" in capsys.readouterr().out
    with pytest.raises(UserError, match="no checkpoint of .* can be read"):
        load_newest_readable_state(_Accelerator({"step-0000002", "step-0000004"}), tmp_path, False)


def test_a_truncated_shard_or_broken_manifest_is_one_line(tiny_dataset, tmp_path):
    dataset = Path(shutil.copytree(tiny_dataset, tmp_path / "copy"))
    shard = next(dataset.rglob("*.safetensors"))
    assert shard_is_complete(shard)
    shard.write_bytes(shard.read_bytes()[:-100])
    assert not shard_is_complete(shard)
    with pytest.raises(UserError, match="damaged or truncated"):
        memory_map_shard(shard)
    (dataset / "manifest.json").write_text('{"format": ')
    with pytest.raises(UserError, match="manifest.json cannot be read"):
        read_manifest(dataset)


def test_a_truncated_ncnn_export_is_made_again(tmp_path, capsys, monkeypatch):
    """pnnx is left out (tests/test_export_ncnn.py runs it): the stand-in writes the weights."""
    from src.runtime import ncnn_backend

    def export_weights(model, out_dir, height, width, *, name):
        paths = {kind: out_dir / f"{name}{suffix}" for kind, suffix in
                 (("param", ".ncnn.param"), ("bin", ".ncnn.bin"), ("shapes", ".json"))}  # fmt: skip
        paths["param"].write_text("7767517\n")
        paths["bin"].write_bytes(b"".join(p.detach().numpy().tobytes() for p in model.parameters()))
        paths["shapes"].write_text("{}")
        return paths

    monkeypatch.setattr(ncnn_backend, "export_step_ncnn", export_weights)
    directory = _package(tmp_path / "student")
    _, weights, _ = ncnn_backend.ensure_export(load_package(directory), 32, 48)
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 3])  # a copy cut short
    _, weights, _ = ncnn_backend.ensure_export(load_package(directory), 32, 48)
    assert "is damaged" in capsys.readouterr().out and weights.read_bytes() == whole


def test_a_loss_that_is_not_finite_stops_before_the_step(tiny_dataset, tmp_path, monkeypatch):
    from src.common.config import load_config
    from src.train import loop
    from src.train.config import TrainConfig

    build = loop.build_objective

    def infinite_objective(*args, **kwargs):
        objective = build(*args, **kwargs)

        def call(forward, batch, **kwargs):
            loss, logs = objective(forward, batch, **kwargs)
            return loss * float("inf"), logs

        call.critics = objective.critics
        return call

    monkeypatch.setattr(loop, "build_objective", infinite_objective)
    config = load_config(TrainConfig, ROOT / "conf/base.yaml", ROOT / "conf/cpu_tiny.yaml")
    config.runs_dir, config.data.dataset, config.max_steps = str(tmp_path), str(tiny_dataset), 2
    config.data.crop, config.data.batch_size, config.validation.enabled = [32, 32], 1, False
    config.model.overrides = dict(
        hidden_dim=32, num_blocks=1, num_heads=2, stem_channels=8, refine_channels=8
    )
    with pytest.raises(UserError, match="the loss became inf at step 1; the step was not taken"):
        loop.train(config)
    assert not list((tmp_path / config.run_name).glob("checkpoints/step-*"))


def test_record_and_side_by_side_on_one_path_are_refused():
    from src.game.config import PlayConfig
    from src.game.session import check_play_config

    config = PlayConfig(headless=True, frames=2, record="ride.mp4", record_side_by_side="./ride.mp4")
    with pytest.raises(UserError, match="one video would overwrite the other"):
        check_play_config(config)


def test_visualize_conditions_will_not_write_into_a_users_folder(tmp_path):
    from src.eval.config import VisualizeConditionsConfig
    from src.eval.visualize_conditions import visualize_conditions

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_bytes(USER_BYTES)
    with pytest.raises(UserError, match="was not written by this command"):
        visualize_conditions(VisualizeConditionsConfig(out=str(out)))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert (out / "notes.txt").read_bytes() == USER_BYTES


def test_a_damaged_download_record_is_named_and_fetched_again(tmp_path, capsys):
    from src.data.download import cached_video, url_digest

    url = "https://example.com/ride.mp4"
    folder = tmp_path / url_digest(url)[:16]
    folder.mkdir()
    (folder / "video.mp4").write_bytes(b"video")
    (folder / "done.json").write_text('{"file": ')
    assert cached_video(url, cache_dir=tmp_path) is None
    assert f"the download record {folder / 'done.json'} is damaged" in capsys.readouterr().out
    (folder / "done.json").write_text(json.dumps({"file": "video.mp4"}))
    assert cached_video(url, cache_dir=tmp_path) == folder / "video.mp4"


@pytest.mark.parametrize(
    ("command", "flag"),
    [("train_net", "--data.game_level"), ("visualize_conditions", "--conf.game_level")],
)
def test_a_missing_level_file_is_one_line_before_anything_runs(command, flag, capsys):
    import importlib

    main = importlib.import_module(f"src.scripts.{command}").main
    with pytest.raises(SystemExit) as exit_info:
        main([flag, "no/such/level.yaml"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{flag} no/such/level.yaml: no such level file" in err
