"""A run records the frame size and rate of its dataset at its first start; resuming it on the
dataset prepared again at another size is one line, and the run folder is left as it was."""

from __future__ import annotations

import json
import shutil

import pytest

from src.common.errors import UserError
from src.train.config import TrainConfig
from src.train.run_folder import DATASET_FILE, record_run


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_resuming_on_a_dataset_prepared_again_at_another_size_is_refused(tiny_dataset, tmp_path):
    dataset = tmp_path / "prepared"
    shutil.copytree(tiny_dataset, dataset)
    config = TrainConfig()
    config.data.dataset = str(dataset)
    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    record_run(run, config)  # the first start
    recorded = json.loads((run / DATASET_FILE).read_text())
    assert recorded == {"dataset": str(dataset), "resolution": [32, 32], "fps": 8.0}
    record_run(run, config)  # resumed on the same data: fine
    (run / "logs.jsonl").write_text('{"step": 2}\n')
    before = _snapshot(run)

    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["resolution"] = [48, 32]  # as prepare_data --resolution 48x32 into the same folder writes it
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError) as refused:
        record_run(run, config)
    assert refused.value.one_line() == (
        f"the run {run} trains at 32x32, 8 fps ({dataset}), but {dataset} now holds 48x32, 8 fps "
        "(prepared again at another size or rate?). Prepare it again with --resolution 32x32 --fps 8, "
        f"or start a new --run_name (--conf.init_from {run} carries the weights over)."
    )
    assert _snapshot(run) == before  # byte for byte: nothing rewritten

    manifest["resolution"], manifest["fps"] = [32, 32], 10.0
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="trains at 32x32, 8 fps .* now holds 32x32, 10 fps"):
        record_run(run, config)


def test_a_run_started_before_datasets_were_recorded_records_it_when_resumed(tiny_dataset, tmp_path):
    config = TrainConfig()
    config.data.dataset = str(tiny_dataset)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run_config.yaml").write_text("seed: 0\n")  # an older run: no dataset.json
    record_run(run, config)
    assert json.loads((run / DATASET_FILE).read_text())["resolution"] == [32, 32]
