"""Broken renderer packages are one-line errors with exit code 2, never a traceback: random bytes,
truncated files, an unknown model class, weights that do not match the config."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from safetensors.torch import save_file

from src.net.presets import build_dit


def random_bytes(path):
    path.write_bytes(os.urandom(512))


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def unknown_class(path):
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "_class_name": "TotallyNewRenderer"}))


def wrong_shapes(path):
    model = build_dit("tiny", hidden_dim=64, num_blocks=1, num_heads=2, stem_channels=8, refine_channels=8)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)


def bad_values(path):
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "hidden_dim": "wide"}))


CASES = [
    ("config.json", random_bytes, "config.json"),
    ("config.json", truncate, "config.json"),
    ("config.json", unknown_class, "unknown model class 'TotallyNewRenderer'"),
    ("config.json", bad_values, "invalid config"),
    ("conditions.json", random_bytes, "conditions.json"),
    ("conditions.json", truncate, "conditions.json"),
    ("model.safetensors", random_bytes, "model.safetensors"),
    ("model.safetensors", truncate, "model.safetensors"),
    ("model.safetensors", wrong_shapes, "do not match config.json"),
]


@pytest.mark.parametrize(
    ("name", "damage", "expected"), CASES, ids=[f"{c[0]}-{c[1].__name__}" for c in CASES]
)
def test_a_broken_package_is_one_line_and_exit_2(tiny_dit_package, tmp_path, capsys, name, damage, expected):
    from src.scripts.play_game import main

    broken = tmp_path / "broken"
    shutil.copytree(tiny_dit_package, broken)
    damage(broken / name)
    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint", str(broken), "--headless", "--autopilot", "--frames", "2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert expected in err
