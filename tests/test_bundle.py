"""A bundle holds several renderers (the real-time student and the DiT): each loads by name, play
starts on any of them, cycles them, shows them side by side and runs only what is on screen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from src.common.errors import UserError
from src.common.gbuffer import GBuffer
from src.conditions.encode import ConditionStats
from src.conditions.spec import ConditionSpec
from src.net.presets import build_dit
from src.net.student import build_student
from src.runtime.package import (
    SamplingDefaults,
    check_package,
    load_package,
    renderer_names,
    write_bundle,
    write_package,
)

H, W = 32, 48


def _package(directory, model, **sampling):
    return write_package(
        directory, model=model.eval(), spec=ConditionSpec(), stats=ConditionStats(), width=W, height=H, fps=10,
        sampling=SamplingDefaults(**sampling), readme="# test\n", card={"step": 1},
    )  # fmt: skip


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("bundle"))


def make_bundle(root, student=None):
    """A tiny two-renderer bundle in ``root``: a student (``student``, a package folder, copied; by
    default a new tiny one) and a patch-8 DiT."""
    import shutil

    torch.manual_seed(0)
    if student is None:
        student = _package(root / "student", build_student("tiny"), num_denoising_steps=1)
    else:
        student = Path(shutil.copytree(student, root / "student"))
    dit = build_dit("tiny", hidden_dim=32, num_blocks=1, num_heads=2, stem_channels=8, refine_channels=8,
                    window_framelets=2, decoder="smooth")  # fmt: skip
    dit = _package(root / "dit", dit, num_denoising_steps=1, context_from_last_step=True)
    return write_bundle(
        root / "bundle", {"student": student, "dit": dit}, default="student", readme="# two renderers\n",
        play_resolution=f"{W * 2}x{H * 2}",
    )  # fmt: skip


def test_a_bundle_loads_each_renderer_by_name(bundle):
    assert check_package(bundle) == bundle
    assert renderer_names(bundle) == ["student", "dit"]
    default = load_package(bundle)
    assert type(default.model).__name__ == "StudentUNet" and default.name == "student"
    assert default.play_resolution == f"{W * 2}x{H * 2}" and default.bundle == bundle
    assert type(load_package(bundle, renderer="default").model).__name__ == "StudentUNet"
    dit = load_package(bundle, renderer="dit")
    assert type(dit.model).__name__ == "VelodreamDiT" and dit.sampling.num_denoising_steps == 1
    with pytest.raises(UserError, match="no renderer called 'unet'.*student, dit"):
        load_package(bundle, renderer="unet")
    # a member is a package of its own (a teacher path, an evaluate checkpoint)
    assert type(load_package(bundle / "dit").model).__name__ == "VelodreamDiT"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda meta: meta.update(default="unet"), "a 'default' that names one of them"),
        (lambda meta: meta["renderers"].update(dit="../dit"), "not a sub-folder"),
        (lambda meta: meta.update(format_version=7), "format 7"),
        (lambda meta: meta["renderers"].update(extra="extra"), "missing config.json"),
    ],
)
def test_a_broken_bundle_is_one_clear_error(bundle, tmp_path, edit, message):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    (broken / "extra").mkdir()
    meta = json.loads((broken / "renderers.json").read_text())
    edit(meta)
    (broken / "renderers.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=message):
        load_package(broken)


def _gbuffer(height: int, width: int) -> GBuffer:
    return GBuffer(
        color=np.zeros((height, width, 3), np.uint8),
        depth=np.full((height, width), 10.0, np.float32),
        flow=np.zeros((height, width, 2), np.float32),
        normals=np.dstack([np.zeros((height, width, 2)), np.ones((height, width))]).astype(np.float32),
        albedo=np.full((height, width, 3), 128, np.uint8),
    )


def test_only_the_renderers_on_screen_run_and_one_coming_back_starts_afresh(bundle):
    from src.play.config import RideConfig
    from src.play.ride import build_neural_source

    source, (width, height), _ = build_neural_source(
        RideConfig(headless=True, frames=4, checkpoint=str(bundle))
    )
    assert (width, height) == (W * 2, H * 2)  # the bundle's play resolution
    assert source.names == ("student", "dit", "side_by_side")
    gbuffer = _gbuffer(height, width)
    source.select_views({"student"})
    for _ in range(4):
        views = source(gbuffer, None)
    student, dit = source.renderers["student"], source.renderers["dit"]
    assert len(student.times.model_ms) == 4 and len(dit.times.model_ms) == 0
    assert views["dit"].max() == 0 and views["student"].min() > 0  # dit: a blank frame, it never ran
    source.select_views({"side_by_side"})  # every renderer runs; the DiT starts with an empty context
    for _ in range(4):
        views = source(gbuffer, None)
    assert len(dit.times.model_ms) == 2 and dit.renderer.cache.num_framelets > 0
    assert views["side_by_side"].shape == (height, 4 * width, 3)  # student | dit | raster | depth
    source.select_views({"student"})
    source(gbuffer, None)
    assert len(dit.times.model_ms) == 2  # off screen: not run
    source.select_views({"dit"})  # back on screen: its stale context is dropped before it runs
    assert dit.renderer.cache.num_framelets == 0


@pytest.mark.slow
def test_play_starts_on_a_named_renderer_and_records_them_side_by_side(bundle, tmp_path):
    from src.common.video import read_video_frames
    from src.play.config import RideConfig
    from src.play.ride import ride

    video, side = tmp_path / "dit.mp4", tmp_path / "side.mp4"
    config = RideConfig(headless=True, autopilot=True, frames=8, seed=1, checkpoint=str(bundle), renderer="dit",
                        record=str(video), record_side_by_side=str(side))  # fmt: skip
    assert ride(config).frames == 8
    assert read_video_frames(video).shape[:3] == (8, H * 2, W * 2)
    assert read_video_frames(side).shape[:3] == (8, H * 2, W * 2 * 4)
    with pytest.raises(UserError, match="unknown renderer 'unet'.*student, dit"):
        ride(RideConfig(headless=True, frames=2, checkpoint=str(bundle), renderer="unet"))


def test_bundle_package_writes_a_bundle_with_a_card_of_every_renderer(bundle, tmp_path, capsys):
    from src.scripts.bundle_package import main

    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"real_psnr": 21.5, "game_seam_ratio": 1.02}))
    out = tmp_path / "out"
    main(["--renderers", f"dit={bundle / 'dit'}", f"student={bundle / 'student'}", "--default", "student",
          "--play_resolution", "96x64", "--evaluations", f"student:road clip={metrics}", "--out", str(out)])  # fmt: skip
    assert renderer_names(out) == ["student", "dit"] and load_package(out).play_resolution == "96x64"
    card = (out / "README.md").read_text()
    assert "| `student` (default) | StudentUNet |" in card and "| `dit` | VelodreamDiT |" in card
    assert "| `student` | road clip | 21.5 |" in card and "[dit/README.md](dit/README.md)" in card
    with pytest.raises(SystemExit) as exit_info:
        main(["--renderers", f"dit={bundle / 'dit'}", "--default", "unet", "--out", str(tmp_path / "x")])
    assert (
        exit_info.value.code == 2
        and "--default unet is not one of the renderers (dit)" in capsys.readouterr().err
    )
