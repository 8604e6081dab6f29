"""The tiny preset starts itself: train_net prepares the embedded clips when its dataset is missing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from src.common.errors import UserError
from src.data import sources
from src.train import auto_data
from tests.test_train import run_train, tiny_overrides

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.fixture
def one_short_embedded_clip(monkeypatch):
    """The embedded clips cut down to two seconds of bikes.mp4 at 32x32, to keep the test short."""
    try:
        bikes = sources.find_embedded_file("bikes.mp4")
    except UserError as error:
        pytest.skip(str(error))
    monkeypatch.setattr(sources, "embedded_street_videos", lambda: [bikes])
    full = auto_data.default_prepare_config
    monkeypatch.setattr(
        auto_data,
        "default_prepare_config",
        lambda dataset: dataclasses.replace(
            full(dataset), resolution="32x32", fps=8.0, end_s=2.0, val_fraction=0.25, shard_frames=8
        ),
    )
    return bikes


def test_the_tiny_preset_prepares_its_missing_dataset_then_trains(
    tmp_path, one_short_embedded_clip, capsys, monkeypatch
):
    dataset = tmp_path / "data" / "prepared" / "default"
    monkeypatch.setattr(
        auto_data, "EMBEDDED_DATASET", str(dataset)
    )  # the preset's folder, in a temporary place
    assert auto_data.default_prepare_config(str(dataset)).defaults  # what prepare_data --defaults does
    run_train(tiny_overrides(dataset, tmp_path / "runs", 1, "--validation.enabled", "false"))
    err = capsys.readouterr().err
    assert f"no prepared dataset at {dataset}: preparing the embedded street clips into it first" in err
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert [Path(v["source"]).name for v in manifest["videos"]] == ["bikes.mp4"]
    assert manifest["totals"]["train_frames"] + manifest["totals"]["val_frames"] == 16  # 2 s at 8 fps
    assert (tmp_path / "runs" / "cpu_tiny" / "package" / "model.safetensors").is_file()
    # a second run finds the dataset and does not prepare again
    assert not auto_data.prepare_defaults_if_missing(_tiny_config(dataset))


def test_other_presets_keep_the_clear_error(tmp_path, one_short_embedded_clip, capsys):
    dataset = tmp_path / "mine"
    with pytest.raises(SystemExit) as exit_info:
        run_train(
            tiny_overrides(dataset, tmp_path / "runs", 1, "--data.prepare_defaults_if_missing", "false")
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1].startswith(f"error: no prepared dataset at {dataset}")
    assert "preparing" not in err and not dataset.exists()
    for preset in ("pretrain_lowres", "pretrain_highres"):
        assert "prepare_defaults_if_missing" not in (ROOT / "conf" / f"{preset}.yaml").read_text()


def _tiny_config(dataset):
    from src.common.config import load_config
    from src.train.config import TrainConfig

    return load_config(
        TrainConfig, "conf/base.yaml", "conf/cpu_tiny.yaml", overrides=["--data.dataset", str(dataset)]
    )
