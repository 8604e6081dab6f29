"""Nothing lost: a command replaces only a folder it wrote itself, never one holding its input or a
user's file, and a full disk gives one line naming the folder with nothing half-written left.

Every command is run with a user's file placed beforehand: the exit code, the one line and the
file being there afterwards are checked."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
import torch

from src.common.errors import UserError
from src.common.io import DiskFullError
from src.common.outputs import OUTPUT_MARKER, atomic_directory, claim_output_folder
from src.conditions.encode import ConditionStats
from src.conditions.spec import ConditionSpec
from src.data.sources import find_embedded_file
from src.net.student import build_student
from src.runtime.package import SamplingDefaults, check_package, write_bundle, write_package

ROOT = Path(__file__).resolve().parents[1]


def _package(directory, seed=0, model=None):
    """A tiny student package (or of ``model``) in ``directory``."""
    torch.manual_seed(seed)
    return write_package(
        directory, model=(model or build_student("tiny")).eval(), spec=ConditionSpec(), stats=ConditionStats(), width=48,
        height=32, fps=10, sampling=SamplingDefaults(num_denoising_steps=1), readme="# test\n", card={"step": 1},
    )  # fmt: skip


def _user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("mine")
    return path


def _fails_with_one_line(capsys, run, *expected: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    line = err.splitlines()[-1]  # progress bars may come before it
    assert line.startswith("error:") and "Traceback" not in err and err.count("error:") == 1, err
    for text in expected:
        assert text in line, err
    return line


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return _package(tmp_path_factory.mktemp("pkg") / "student")


# -- the rule, on its own ------------------------------------------------------------------------


def test_a_folder_is_replaced_only_by_the_kind_of_command_that_wrote_it(tmp_path):
    out = tmp_path / "out"
    with atomic_directory(out, kind="thing") as staging:
        (staging / "a.txt").write_text("1")
    assert json.loads((out / OUTPUT_MARKER).read_text())["files"] == ["a.txt"]
    with atomic_directory(out, kind="thing") as staging:  # its own output: replaced
        (staging / "a.txt").write_text("2")
    assert (out / "a.txt").read_text() == "2"
    with pytest.raises(UserError, match="holds a thing output, not a other"):
        claim_output_folder(out, kind="other")
    (out / "notes.txt").write_text("mine")  # a user's file inside an output: not replaced
    with pytest.raises(UserError, match="holds notes.txt, which this command did not write"):
        with atomic_directory(out, kind="thing") as staging:
            (staging / "a.txt").write_text("3")
    assert (out / "notes.txt").read_text() == "mine" and (out / "a.txt").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left
    user = _user_folder(tmp_path / "user")
    with pytest.raises(UserError, match="was not written by this command"):
        claim_output_folder(user, kind="thing")
    with pytest.raises(UserError, match="contains this command's input"):
        claim_output_folder(tmp_path, kind="thing", inputs=[out / "a.txt"])
    with pytest.raises(UserError, match="contains this command's input"):
        claim_output_folder(out, kind="thing", inputs=[out])


def test_a_crash_while_writing_leaves_the_old_output(tmp_path):
    out = tmp_path / "out"
    with atomic_directory(out, kind="thing") as staging:
        (staging / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(out, kind="thing") as staging:
            (staging / "a.txt").write_text("new")
            raise RuntimeError("crash")
    assert (out / "a.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# -- export_package, bundle_package, baseline_package ----------------------------------------------


def test_export_package_refuses_a_folder_holding_its_run_or_a_users_file(tmp_path, capsys):
    from src.scripts.export_package import main

    runs = tmp_path / "runs"
    run = runs / "cpu_tiny"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run_config.yaml").write_text("run_name: cpu_tiny\n")
    _fails_with_one_line(
        capsys, lambda: main([str(run), "--out", str(runs)]), f"--out {runs} contains this command's input"
    )
    assert (run / "run_config.yaml").is_file() and (run / "checkpoints").is_dir()
    user = _user_folder(tmp_path / "mine")
    _fails_with_one_line(capsys, lambda: main([str(run), "--out", str(user)]), f"--out {user} already exists")
    assert (user / "notes.txt").read_text() == "mine"


def test_bundle_package_replaces_its_own_bundle_only(package, tmp_path, capsys):
    from src.scripts.bundle_package import main

    out = tmp_path / "bundle"
    main(["--renderers", f"student={package}", "--out", str(out)])
    main(["--renderers", f"student={package}", "--out", str(out)])  # its own bundle: replaced
    (out / OUTPUT_MARKER).unlink()  # a bundle written before markers is still recognised as ours
    main(["--renderers", f"student={package}", "--out", str(out)])
    mode = stat.S_IMODE((out / "student" / "model.safetensors").stat().st_mode)
    assert mode == stat.S_IMODE((out / "student" / "config.json").stat().st_mode) and mode & 0o044
    (out / "notes.txt").write_text("mine")
    _fails_with_one_line(capsys, lambda: main(["--renderers", f"student={package}", "--out", str(out)]),
                         "holds notes.txt, which this command did not write")  # fmt: skip
    assert (out / "notes.txt").read_text() == "mine"
    user = _user_folder(tmp_path / "mine")
    _fails_with_one_line(capsys, lambda: main(["--renderers", f"student={package}", "--out", str(user)]),
                         f"--out {user} already exists")  # fmt: skip
    assert (user / "notes.txt").is_file()
    _fails_with_one_line(capsys, lambda: main(["--renderers", f"student={package}", "--out", str(package.parent)]),
                         "contains this command's input")  # fmt: skip
    assert check_package(package) == package
    _fails_with_one_line(capsys, lambda: main(["--renderers", f"a={package}", f"a={package}", "--out", str(tmp_path / "x")]),
                         "--renderers names a more than once")  # fmt: skip
    assert not (tmp_path / "x").exists()


def test_baseline_package_replaces_its_own_package_and_recognises_an_old_one(tiny_dataset, tmp_path, capsys):
    from src.scripts.baseline_package import main

    out = tmp_path / "flat"
    main(["--data", str(tiny_dataset), "--out", str(out)])
    (out / OUTPUT_MARKER).unlink()
    (out / "ncnn").mkdir()  # play's export inside a package written before markers: still ours
    main(["--data", str(tiny_dataset), "--out", str(out)])
    assert (out / OUTPUT_MARKER).is_file() and check_package(out) == out
    user = _user_folder(tmp_path / "mine")
    _fails_with_one_line(
        capsys, lambda: main(["--data", str(tiny_dataset), "--out", str(user)]), "already exists"
    )
    assert (user / "notes.txt").is_file()
    _fails_with_one_line(capsys, lambda: main(["--data", str(tiny_dataset), "--out", str(tiny_dataset.parent)]),
                         "contains this command's input")  # fmt: skip
    assert (tiny_dataset / "manifest.json").is_file()


# -- play's recordings, prepare_data, evaluate, bench_generalisation, train_net, downloads ---------------


def test_play_refuses_a_users_folder_for_the_gbuffer_clip_before_rendering(tmp_path, capsys, monkeypatch):
    from src.scripts.play_game import main

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    user = _user_folder(tmp_path / "clip")
    _fails_with_one_line(capsys, lambda: main(["--renderer", "raster", "--headless", "--frames", "2",
                                              "--record_gbuffers", str(user)]),
                         f"the G-buffer clip folder {user} already exists")  # fmt: skip
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]


def test_prepare_data_evaluate_and_bench_generalisation_refuse_a_users_folder(tiny_dataset, tmp_path, capsys):
    from src.scripts.bench_generalisation import main as bench
    from src.scripts.evaluate import main as evaluate
    from src.scripts.prepare_data import main as prepare
    from src.train.package import write_flat_color_package

    user = _user_folder(tmp_path / "mine")
    bikes = str(find_embedded_file("bikes.mp4"))
    _fails_with_one_line(
        capsys, lambda: prepare(["--videos", bikes, "--out", str(user)]), f"--out {user} already exists"
    )
    flat = write_flat_color_package(tmp_path / "flat", dataset=tiny_dataset)
    _fails_with_one_line(capsys, lambda: evaluate(["--checkpoint", str(flat), "--data", str(tiny_dataset),
                                                   "--out", str(user)]), f"--out {user} already exists")  # fmt: skip
    vtest = str(find_embedded_file("vtest.avi"))
    _fails_with_one_line(capsys, lambda: bench(["--videos", bikes, vtest, "--max_steps", "1",
                                                "--out", str(user)]), f"--out {user} already exists")  # fmt: skip
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]
    # a prepared dataset is prepare_data's own: a re-run resumes it, and a user's file in it stays
    (tiny_dataset / "notes.txt").write_text("mine")
    try:
        from src.data.prepare import PREPARED_KIND, is_prepared_folder

        claim_output_folder(tiny_dataset, kind=PREPARED_KIND, recognise=is_prepared_folder, replaces=False)
    finally:
        (tiny_dataset / "notes.txt").unlink()


def test_train_net_refuses_a_run_folder_that_is_not_a_run(tmp_path):
    from src.train.run_folder import claim_run_folder

    user = _user_folder(tmp_path / "runs" / "cpu_tiny")
    with pytest.raises(UserError, match="already holds notes.txt and is not a training run"):
        claim_run_folder(user)
    (user / "run_config.yaml").write_text("run_name: cpu_tiny\n")
    claim_run_folder(user)  # a run: resumed


def test_a_download_leaves_the_users_files_in_the_cache(tmp_path):
    import hashlib

    from src.play.fetch import resolve_checkpoint
    from tests.test_checkpoint_download import ArchiveServer, make_package_archive

    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "packages").mkdir()
    (tmp_path / "packages" / "notes.txt").write_text("mine")
    payload = make_package_archive()
    with ArchiveServer(payload) as url:
        resolve_checkpoint(f"{url}#sha256={hashlib.sha256(payload).hexdigest()}", cache_dir=tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "packages" / "notes.txt").is_file()


# -- full disks --------------------------------------------------------------------------------------


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_writing_a_package_keeps_the_old_one(package, tmp_path, monkeypatch):
    import safetensors.torch  # write_package imports its serialiser when it writes

    out = _package(tmp_path / "out")
    before = (out / "model.safetensors").read_bytes()
    monkeypatch.setattr(safetensors.torch, "save", lambda *a, **k: _enospc())
    with pytest.raises(DiskFullError) as error:
        _package(out, seed=1)
    assert error.value.one_line().startswith(f"the disk holding {tmp_path} is full")
    assert (out / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left


def test_a_full_disk_stops_prepare_data_with_one_line(tmp_path, capsys, monkeypatch):
    from src.scripts.prepare_data import main

    bikes, vtest = find_embedded_file("bikes.mp4"), find_embedded_file("vtest.avi")
    out = tmp_path / "data"
    from src.data import prepared

    monkeypatch.setattr(prepared, "save", _enospc)  # the shard writer's safetensors save
    _fails_with_one_line(capsys, lambda: main(["--videos", str(bikes), str(vtest), "--out", str(out),
                                              "--resolution", "32x32", "--fps", "4", "--end_s", "2"]),
                         f"the disk holding {out} is full")  # fmt: skip
    assert not (out / "manifest.json").exists() and not (out / "failures").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.suffix == ".safetensors"]


def test_a_full_disk_while_recording_removes_the_partial_video(tmp_path, monkeypatch):
    import numpy as np

    from src.common.video import Mp4Writer

    writer = Mp4Writer(tmp_path / "ride.mp4", fps=10, width=32, height=32)
    writer.write(np.zeros((32, 32, 3), np.uint8))
    monkeypatch.setattr(writer, "_container", type("Full", (), {"mux": _enospc, "close": _enospc})())
    with pytest.raises(DiskFullError, match=f"the disk holding {tmp_path} is full"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_downloading_is_not_a_connection_problem(tmp_path, monkeypatch):
    import hashlib

    from src.play import fetch as checkpoints
    from tests.test_checkpoint_download import ArchiveServer, make_package_archive

    monkeypatch.setattr(checkpoints, "_download_range", _enospc)
    payload = make_package_archive()
    with ArchiveServer(payload) as url:
        with pytest.raises(DiskFullError, match=f"the disk holding {tmp_path / 'downloads'} is full"):
            checkpoints.resolve_checkpoint(
                f"{url}#sha256={hashlib.sha256(payload).hexdigest()}", cache_dir=tmp_path
            )


def test_a_full_disk_stops_training_and_drops_the_unfinished_checkpoint(tmp_path, monkeypatch):
    from src.train import loop
    from src.train.config import TrainConfig

    config = TrainConfig(runs_dir=str(tmp_path), run_name="run")
    staged = tmp_path / "run" / "checkpoints" / ".step-0000004.tmp"

    class FullTrainer:
        def __init__(self, config):
            staged.mkdir(parents=True)

        def run(self):
            raise RuntimeError("[enforce fail at inline_container.cc] . PytorchStreamWriter failed writing file: "
                               "No space left on device")  # fmt: skip

    monkeypatch.setattr(loop, "Trainer", FullTrainer)
    with pytest.raises(DiskFullError, match=f"the disk holding {tmp_path / 'run'} is full"):
        loop.train(config)
    assert not staged.exists()


def test_a_one_renderer_bundle_archived_without_a_folder_downloads(package, tmp_path):
    import hashlib
    import io
    import tarfile

    from src.play.fetch import resolve_checkpoint
    from src.runtime.package import load_package
    from tests.test_checkpoint_download import ArchiveServer

    bundle = write_bundle(tmp_path / "bundle", {"student": package}, default="student", readme="# one\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(bundle.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                archive.add(path, arcname=str(path.relative_to(bundle)))  # no top-level folder
    payload = buffer.getvalue()
    with ArchiveServer(payload) as url:
        resolved = resolve_checkpoint(
            f"{url}#sha256={hashlib.sha256(payload).hexdigest()}", cache_dir=tmp_path / "cache"
        )
    assert load_package(resolved).name == "student"
