"""One training run per run folder, and a log that matches the checkpoint a run resumes from.

``lock_run_folder`` takes ``RUN/.lock`` (src/common/folder_lock.py): a second ``train_net`` on the
same run gets one line naming the holder; a lock left by a killed process is taken over (and the
next run says so).

``record_run`` refuses to resume a run whose model, conditions or data changed: the dataset is
recorded at the run's first start (``RUN/dataset.json``: its frame size and rate); re-prepared
at another size, resuming would train on with no word and the package would claim the new size.

``drop_log_records_after`` keeps in ``logs.jsonl`` only the records up to the step a run resumes
from: a run killed after logging but before its next checkpoint would otherwise log those steps
twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

import yaml

from src.common.config import to_dict, to_yaml
from src.common.errors import UserError
from src.common.folder_lock import LOCK_FILE, lock_folder
from src.common.folder_lock import release_folder_lock as release_run_folder
from src.common.io import atomic_write_json, atomic_write_text
from src.data.prepared import read_manifest
from src.train.config import TrainConfig

__all__ = [
    "LOCK_FILE",
    "check_same_run",
    "claim_run_folder",
    "drop_log_records_after",
    "lock_run_folder",
    "record_run",
    "release_run_folder",
]
DATASET_FILE = "dataset.json"  # the frame size and rate the run trains at, from its first start


def lock_run_folder(run_dir: str | Path) -> IO[str]:
    """Lock ``run_dir`` for this process (kept until the returned file is closed or the process
    ends); a UserError if another live process holds it."""
    return lock_folder(
        run_dir,
        in_use=f"the run {run_dir} is in use by another train_net",
        hint="Wait for it to finish or stop it; two runs in one folder would mix their checkpoints and logs.",
    )


def drop_log_records_after(run_dir: str | Path, step: int) -> int:
    """Remove from ``RUN/logs.jsonl`` (atomically) every record past ``step``; returns how many."""
    log = Path(run_dir) / "logs.jsonl"
    if not log.is_file():
        return 0
    kept, dropped = [], 0
    for line in log.read_text().splitlines():
        try:
            record_step = json.loads(line).get("step", 0)
        except (ValueError, AttributeError):
            record_step = None  # a line cut off by the crash
        if record_step is None or record_step > step:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        atomic_write_text(log, "".join(f"{line}\n" for line in kept))
    return dropped


def claim_run_folder(run_dir: str | Path) -> None:
    """Refuse (one line) a run folder that exists, holds files, and is not a training run: training
    writes checkpoints, logs and a package into it and removes its own unfinished checkpoints."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"the run folder {run_dir} exists and is not a folder", "Choose another --run_name.")
    if not run_dir.is_dir() or (run_dir / "run_config.yaml").is_file():
        return
    names = sorted(child.name for child in run_dir.iterdir() if child.name != LOCK_FILE)
    if names:
        raise UserError(
            f"the run folder {run_dir} already holds {', '.join(names[:3])}{' ...' if len(names) > 3 else ''} "
            "and is not a training run",
            "Choose another --run_name (or --runs_dir), or move those files away.",
        )


def _dataset_record(dataset: str | Path) -> dict:
    manifest = read_manifest(dataset)
    return {"dataset": str(dataset), "resolution": list(manifest["resolution"]), "fps": manifest["fps"]}


def _check_same_dataset(run_dir: Path, dataset: str | Path) -> None:
    recorded_file = run_dir / DATASET_FILE
    if not recorded_file.is_file():
        return  # a new run, or one started before datasets were recorded (recorded from now on)
    recorded, now = json.loads(recorded_file.read_text()), _dataset_record(dataset)
    if (recorded["resolution"], recorded["fps"]) != (now["resolution"], now["fps"]):
        (width, height), fps = recorded["resolution"], recorded["fps"]
        raise UserError(
            f"the run {run_dir} trains at {width}x{height}, {fps:g} fps ({recorded['dataset']}), but "
            f"{dataset} now holds {now['resolution'][0]}x{now['resolution'][1]}, {now['fps']:g} fps "
            "(prepared again at another size or rate?)",
            f"Prepare it again with --resolution {width}x{height} --fps {fps:g}, or start a new --run_name "
            f"(--conf.init_from {run_dir} carries the weights over).",
        )


def check_same_run(run_dir: Path, config: TrainConfig) -> None:
    """Refuse to resume a run whose model or data changed; other settings may change."""
    _check_same_dataset(run_dir, config.data.dataset)
    saved_path = run_dir / "run_config.yaml"
    if not saved_path.is_file():
        return

    saved = yaml.safe_load(saved_path.read_text())
    current = to_dict(config)
    defaults = to_dict(TrainConfig())
    for key in ("model", "conditions"):
        # fields added since the run started (model.model_class) count with their defaults
        if {**defaults[key], **saved.get(key, {})} != current.get(key):
            raise UserError(
                f"{run_dir} was trained with a different '{key}' section than this command asks for",
                "Resume with the same config, or pick a new --run_name.",
            )


def record_run(run_dir: Path, config: TrainConfig) -> None:
    """``check_same_run``, then write ``run_config.yaml`` and (at the first start) ``dataset.json``."""
    check_same_run(run_dir, config)
    atomic_write_text(run_dir / "run_config.yaml", to_yaml(config))
    if not (run_dir / DATASET_FILE).is_file():
        atomic_write_json(run_dir / DATASET_FILE, _dataset_record(config.data.dataset))
