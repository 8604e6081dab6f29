"""A command removes only what its own marker lists, at every depth, and never a folder it did not
create; names given to it stay inside its folder; what an interrupted write leaves is cleaned by
the next one and never published. Every test checks the user's file is still there, byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from huggingface_hub.utils import filter_repo_objects

from src.common.errors import UserError
from src.common.gbuffer import GBuffer
from src.common.gbuffer_io import save_gbuffer_clip
from src.common.outputs import (
    NOT_PUBLISHED,
    OUTPUT_MARKER,
    STAGING_MARKER,
    atomic_directory,
    check_plain_name,
    clean_stale_staging,
)
from src.conditions.spec import ConditionSpec
from src.net.flat_color import FlatColorRenderer
from src.runtime.package import write_bundle
from src.runtime.package_folders import claim_package_folder
from tests.test_output_folders import _package

USER_BYTES = b"a user's notes \x00\xff"


def _write_nested(target):
    with atomic_directory(target, kind="test output") as staging:
        (staging / "member").mkdir()
        (staging / "member" / "weights.bin").write_bytes(b"ours")
        (staging / "top.json").write_text("{}")


def test_a_user_file_inside_a_member_folder_blocks_the_rewrite_and_survives(tmp_path):
    target = tmp_path / "out"
    _write_nested(target)
    marker = json.loads((target / OUTPUT_MARKER).read_text())
    assert {"member", "member/weights.bin", "top.json"} <= set(marker["files"])
    (target / "member" / "notes.txt").write_bytes(USER_BYTES)
    with pytest.raises(UserError, match="member/notes.txt"):
        _write_nested(target)
    assert (target / "member" / "notes.txt").read_bytes() == USER_BYTES
    (target / "member" / "notes.txt").unlink()
    _write_nested(target)  # only its own files left: rewritten as before
    assert (target / "member" / "weights.bin").read_bytes() == b"ours"


def test_a_sibling_old_folder_of_the_user_is_never_deleted(tmp_path):
    target = tmp_path / "out"
    users = tmp_path / ".out.old"
    users.mkdir()
    (users / "keep.txt").write_bytes(USER_BYTES)
    _write_nested(target)
    _write_nested(target)  # the second write moves the first aside and removes it
    assert (users / "keep.txt").read_bytes() == USER_BYTES
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.old", "out"]


def test_a_gbuffer_clip_rewrite_keeps_a_users_old_folder(tmp_path):
    frame = GBuffer(
        color=np.zeros((4, 4, 3), np.uint8),
        albedo=np.zeros((4, 4, 3), np.uint8),
        depth=np.ones((4, 4), np.float32),
        normals=np.zeros((4, 4, 3), np.float32),
        flow=np.zeros((4, 4, 2), np.float32),
        semantic=np.zeros((4, 4), np.uint8),
    )
    meta = {"fps": 10, "resolution": (4, 4), "fov_y_deg": 70, "near_m": 0.1, "far_m": 100, "seed": 0,
            "depth_kind": "metric"}  # fmt: skip
    users = tmp_path / ".clip.old"
    users.mkdir()
    (users / "keep.txt").write_bytes(USER_BYTES)
    save_gbuffer_clip(tmp_path / "clip", [frame], meta)
    save_gbuffer_clip(tmp_path / "clip", [frame, frame], meta)
    assert (users / "keep.txt").read_bytes() == USER_BYTES
    assert json.loads((tmp_path / "clip" / "meta.json").read_text())["num_frames"] == 2


def test_an_interrupted_write_is_cleaned_by_the_next_and_never_published(tmp_path):
    target = tmp_path / "out"
    # a staging folder of a process that is gone (a short-lived child's pid)
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(child.stdout)
    stale = tmp_path / ".out.abc123.tmp"
    stale.mkdir()
    (stale / STAGING_MARKER).write_text(json.dumps({"pid": dead_pid, "target": "out"}))
    (stale / "config.json").write_text("{}")
    live = tmp_path / ".out.def456.tmp"  # a write in progress in this process: left alone
    live.mkdir()
    (live / STAGING_MARKER).write_text(json.dumps({"pid": os.getpid(), "target": "out"}))
    users = tmp_path / ".out.mine.tmp"  # the user's, no staging marker: left alone
    users.mkdir()
    (users / "keep.txt").write_bytes(USER_BYTES)
    _write_nested(target)
    assert not stale.exists() and live.is_dir()
    assert (users / "keep.txt").read_bytes() == USER_BYTES
    assert clean_stale_staging(target) == []
    # the hub patterns leave out markers and staging folders at any depth
    paths = ["config.json", "student/model.safetensors", ".out.abc.tmp/config.json", OUTPUT_MARKER,
             "student/.velodream-output.json", "ncnn/64x64/step.ncnn.param"]  # fmt: skip
    kept = list(filter_repo_objects(paths, allow_patterns=["*.json", "*.safetensors", "ncnn/*"],
                                    ignore_patterns=NOT_PUBLISHED))  # fmt: skip
    assert kept == ["config.json", "student/model.safetensors", "ncnn/64x64/step.ncnn.param"]


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/b", "..", ".", ""])
def test_a_renderer_name_is_a_plain_name(name, tmp_path):
    with pytest.raises(UserError, match="not a plain name"):
        check_plain_name(name, "--renderers name")
    student = _package(tmp_path / "student")
    with pytest.raises(UserError, match="not a plain name"):
        write_bundle(tmp_path / "out" / "bundle", {name: student}, default=name, readme="#\n")
    assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists()


def test_a_bundle_member_or_another_kind_of_package_is_never_replaced(tmp_path):
    student = _package(tmp_path / "student")
    bundle = write_bundle(tmp_path / "bundle", {"student": student}, default="student", readme="#\n")
    before = (bundle / "student" / "model.safetensors").read_bytes()
    (bundle / OUTPUT_MARKER).unlink()  # as the repository ships it: recognised without a marker
    baseline = FlatColorRenderer(condition_channels=ConditionSpec().num_channels, albedo_channels=[0, 1, 2])
    with pytest.raises(UserError, match="renderer of the bundle"):
        claim_package_folder(bundle / "student", model_class="FlatColorRenderer")
    with pytest.raises(UserError, match="renderer of the bundle"):
        _package(bundle / "student", model=baseline)
    assert (bundle / "student" / "model.safetensors").read_bytes() == before
    with pytest.raises(UserError, match="holds a StudentUNet package, not a FlatColorRenderer"):
        _package(tmp_path / "student", model=baseline)
    assert (tmp_path / "student" / "config.json").is_file()


def test_a_package_with_runtime_exports_is_rewritten_but_a_file_inside_an_export_stops_it(tmp_path):
    package = _package(tmp_path / "student")
    for runtime in ("ncnn", "onnx"):  # exports made on demand, each folder with its own marker
        with atomic_directory(package / runtime / "48x32", kind=f"{runtime} export") as staging:
            (staging / "step.bin").write_bytes(b"export")
    _package(tmp_path / "student", seed=1)  # rewritten: the exports are the runtimes' own
    with atomic_directory(package / "onnx" / "48x32", kind="onnx export") as staging:
        (staging / "step.onnx").write_bytes(b"export")
    (package / "onnx" / "48x32" / "notes.txt").write_bytes(USER_BYTES)
    with pytest.raises(UserError, match="onnx/48x32/notes.txt"):
        _package(tmp_path / "student", seed=2)
    assert (package / "onnx" / "48x32" / "notes.txt").read_bytes() == USER_BYTES
