"""The prepared dataset that ``evaluate --data`` (and ``--reference``) names: itself when it is
one, else its videos prepared at the package's size and fps, once, in a cache keyed by the videos
and the settings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from src.common.config import to_dict
from src.common.errors import UserError
from src.data.decode import find_videos
from src.data.prepare import PrepareConfig, prepare_dataset


def _video_digest(videos: list[Path], settings: dict) -> str:
    """Names the prepared copy of ``videos`` by their paths, sizes and times and the settings."""
    files = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in videos]
    text = json.dumps({"videos": files, **settings}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def prepared_data(data: str, *, width: int, height: int, fps: float, split: str, cache_dir: Path) -> Path:
    """The prepared dataset ``data`` names: itself when it is one, else its videos prepared at
    ``width`` x ``height`` and ``fps`` (once; cached under ``cache_dir``/prepared)."""
    path = Path(data)
    if (path / "manifest.json").is_file():
        return path
    if not path.exists():
        raise UserError(
            f"--data {data} does not exist", "Give a prepared dataset, video files or a folder of videos."
        )
    videos = find_videos([path])
    config = PrepareConfig(
        videos=[str(v) for v in videos],
        resolution=f"{width}x{height}",
        fps=fps,
        # split all: one run of every frame per video (no held-out cut whose first flow is zero)
        val_fraction=0.0 if split == "all" else PrepareConfig.val_fraction,
    )
    settings = {"decode": to_dict(config.decode_config()), "extract": to_dict(config.extract)}
    config.out = str(cache_dir / "prepared" / f"{path.name or 'videos'}-{_video_digest(videos, settings)}")
    if not (Path(config.out) / "manifest.json").is_file():
        print(
            f"preparing {len(videos)} video(s) at {width}x{height}, {fps:g} fps into {config.out}", flush=True
        )
        prepare_dataset(config)
    return Path(config.out)
