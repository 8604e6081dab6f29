"""Commands that meet a network or a file they cannot use say so in one line (exit code 2)."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from src.common.errors import UserError
from src.play.fetch import resolve_checkpoint
from tests.test_bundle import make_bundle
from tests.test_checkpoint_download import ArchiveServer

ROOT = Path(__file__).resolve().parents[1]


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_publish_without_a_reachable_hub_is_one_line(monkeypatch, capsys):
    import huggingface_hub.constants

    from src.scripts.publish_checkpoint import main

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    with pytest.raises(SystemExit) as exit_info:
        main([str(ROOT / "game/models/default/student"), "--repo-id", "someone/velodream-test"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the Hugging Face Hub"), err


@pytest.mark.parametrize("payload", [b"<html><body>Not Found</body></html>\n", bytes(range(256)) * 64])
def test_a_url_that_is_not_an_archive_is_one_plain_line(payload, tmp_path):
    digest = hashlib.sha256(payload).hexdigest()
    with ArchiveServer(payload) as url, pytest.raises(UserError) as error:
        resolve_checkpoint(f"{url}#sha256={digest}", cache_dir=tmp_path)
    line = error.value.one_line()
    assert "\n" not in line and "is not a tar or zip archive" in line, line
    assert "method" not in line and "ReadError" not in line  # not tarfile's list of attempts


@pytest.mark.parametrize(
    ("preset", "command"),
    [
        (
            "pretrain_lowres",
            "--videos data/real_videos --out data/prepared/lowres_224 --resolution 224x224 --fps 24",
        ),
        (
            "pretrain_highres",
            "--videos data/real_videos --out data/prepared/highres_320 --resolution 320x320 --fps 24",
        ),
        ("cpu_tiny", "--defaults --out data/prepared/default"),
    ],
)
def test_a_missing_dataset_names_the_command_that_makes_it(preset, command, tmp_path, monkeypatch):
    from src.common.config import load_config
    from src.data.prepared import read_manifest
    from src.train.config import TrainConfig

    config = load_config(TrainConfig, "base.yaml", f"{preset}.yaml")
    monkeypatch.chdir(tmp_path)  # a fresh clone: no data/
    with pytest.raises(UserError) as error:
        read_manifest(config.data.dataset)
    line = error.value.one_line()
    assert f"`uv run python -m src.scripts.prepare_data {command}`" in line, line
    if preset != "cpu_tiny":
        assert "data/real_videos/" in line and "--defaults" not in line


def test_baseline_package_without_data_gives_the_prepare_command(tmp_path, monkeypatch, capsys):
    from src.scripts.baseline_package import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", "data/prepared/highres_320", "--out", str(tmp_path / "flat")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "--out data/prepared/highres_320 --resolution 320x320 --fps 24" in err
    assert not (tmp_path / "flat").exists()


def test_steps_for_the_student_alone_is_refused(monkeypatch, capsys):
    from src.scripts.play_game import main

    monkeypatch.chdir(ROOT)
    args = ["--checkpoint", "game/models/default/student", "--headless", "--autopilot", "--frames", "2"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--steps", "2", "--record", "runs/never_written.mp4"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert "--steps 2 has no effect: renderer neural makes one pass per frame" in err
    assert not (ROOT / "runs/never_written.mp4").exists()


def test_steps_with_a_bundle_names_the_renderers_that_ignore_it(capsys):
    from src.play.ride import check_steps_apply
    from src.runtime.package import load_package

    packages = {
        name: load_package(ROOT / "game/models/default", renderer=name) for name in ("student", "dit")
    }
    check_steps_apply(2, packages)
    assert (
        capsys.readouterr().err.strip() == "note: --steps 2 applies to dit; student makes one pass per frame"
    )
    check_steps_apply(None, packages)
    assert capsys.readouterr().err == ""


def test_a_slow_first_step_on_the_cpu_is_one_line_with_the_measured_time():
    from src.train.host import cpu_step_note

    note = cpu_step_note(41.0, 200_000)
    assert "\n" not in note and "41.0 s" in note and "200,000 steps" in note and "94.9 days" in note
    assert "conf/cpu_tiny.yaml" in note
    assert "3.1 hours" in cpu_step_note(2.5, 4500)
    assert cpu_step_note(0.4, 6000) is None  # the CPU presets' steps: no note


def _record_built_renderers(monkeypatch) -> list[int]:
    """Wrap the real make_renderer; returns the list of the model classes it builds."""
    import src.runtime.backends as backends

    built = []
    real = backends.make_renderer

    def recording(package, **kwargs):
        built.append(type(package.model).__name__)
        return real(package, **kwargs)

    monkeypatch.setattr(backends, "make_renderer", recording)
    return built


# 104x104: a multiple of the test bundle's DiT patch (8), not of the student's 16 (the bundled DiT
# has patch 16 like the student, so these use the two-renderer bundle of tests/test_bundle.py)
@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("bundle"), student=ROOT / "game/models/default/student")


DIT_AT_104 = ["--renderer", "dit", "--resolution", "104x104", "--headless", "--autopilot", "--frames", "2"]


def test_only_the_renderers_that_run_are_checked_and_built(bundle, monkeypatch, tmp_path, capsys):
    from src.scripts.play_game import main

    monkeypatch.chdir(ROOT)
    built = _record_built_renderers(monkeypatch)
    main(
        [*DIT_AT_104, "--checkpoint", str(bundle), "--record", str(tmp_path / "dit.mp4")]
    )  # only the DiT runs
    assert built == ["VelodreamDiT"] and (tmp_path / "dit.mp4").is_file()
    assert "student" not in capsys.readouterr().err


def test_a_renderer_that_must_run_and_cannot_is_named(bundle, monkeypatch, tmp_path, capsys):
    from src.scripts.play_game import main

    monkeypatch.chdir(ROOT)
    built = _record_built_renderers(monkeypatch)
    with pytest.raises(SystemExit) as exit_info:  # side by side runs every renderer, the student too
        main([*DIT_AT_104, "--checkpoint", str(bundle), "--record_side_by_side", str(tmp_path / "sbs.mp4")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: renderer student: ") and "104x104 is not a multiple of 16" in err
    assert built == [] and not (tmp_path / "sbs.mp4").exists()


def test_in_a_window_a_renderer_that_cannot_render_the_size_is_left_out_with_a_note(
    bundle, monkeypatch, capsys
):
    from src.play.config import RideConfig
    from src.play.ride import load_renderers

    monkeypatch.chdir(ROOT)
    packages, size = load_renderers(RideConfig(checkpoint=str(bundle), renderer="dit", resolution="104x104"))
    assert list(packages) == ["dit"] and size == (104, 104)
    err = capsys.readouterr().err.strip()
    assert err.startswith("note: renderer student is left out of the views") and len(err.splitlines()) == 1
