"""Videos -> a prepared dataset (frames + extracted raw channels in shards, and a manifest).

Each video is streamed into its shards by ``src/data/video_shards.py`` (never held whole;
resumable: shards are written atomically and skipped when present, and a video already prepared
with the same settings and content is skipped without decoding). A corrupt or unsupported file
is reported and skipped; a full disk stops the run with one line. The output folder is marked as
a prepared dataset; an existing folder that is not one is refused (``src/common/io.py``).

Under ``accelerate launch`` each process takes every ``world``-th video
(``accelerate.PartialState``); with fewer videos than processes (one long video), every process
decodes each video and extracts a contiguous part of its shards instead, and the main process
writes its ``video.json`` once all parts are done; the shards are the same as one process
writes. The main process writes the manifest once all videos are done.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from safetensors.numpy import load_file

from src.common.config import parse_resolution, to_dict
from src.common.errors import UserError
from src.common.io import DiskFullError, atomic_write_json, is_full_disk
from src.common.outputs import claim_output_folder, write_output_marker
from src.common.progress import tqdm
from src.conditions.encode import StatsAccumulator
from src.conditions.extract import Extractor
from src.data import prepared
from src.data import sources as embedded
from src.data.config import PrepareConfig  # the settings live apart, free of cv2, av and torch
from src.data.dataset_lock import lock_dataset_folder, release_dataset_folder
from src.data.download import download_once, download_video, expand_video_sources, is_url
from src.data.video_shards import finish_split_video, log, prepare_video, source_video_id

PREPARED_KIND = "prepared dataset"


def is_prepared_folder(folder: Path) -> bool:
    """A dataset folder written before output markers, or locked by a prepare_data stopped before it
    wrote its marker: only what ``prepare_dataset`` writes (.lock: src/common/folder_lock.py)."""
    return {child.name for child in folder.iterdir()} <= {"manifest.json", "videos", "failures", ".lock"}


def compute_stats(out: Path, records: list[dict], config: PrepareConfig):
    """``ConditionStats`` over the training frames of all prepared videos."""
    accumulator = StatsAccumulator(
        fov_y_deg=config.extract.assumed_fov_y_deg, pixels_per_frame=config.stats_pixels_per_frame
    )
    for record in records:
        for shard in record["shards"]:
            if shard["split"] != "train":
                continue
            arrays = load_file(str(out / "videos" / record["id"] / shard["file"]))
            accumulator.add(
                depth=arrays["depth"].astype(np.float32),
                flow=arrays["flow"].astype(np.float32),
                depth_kind="inverse_relative",
            )
    return accumulator.stats()


def _skip(path: Path, error: Exception, failure_file: Path) -> None:
    """Report a video that could not be prepared and record why (the manifest lists it)."""
    message = error.one_line() if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
    log(f"skipped {path}: {message}")
    atomic_write_json(failure_file, {"source": str(path), "error": message})


def _sources(config: PrepareConfig) -> list:
    """The videos (files and URLs) to prepare: ``--videos`` and, with ``--defaults``, the embedded
    clips (read through the module: tests replace it)."""
    return expand_video_sources(
        [*config.videos, *(embedded.embedded_street_videos() if config.defaults else [])]
    )


def _prepare_one(
    path, out: Path, config: PrepareConfig, extractor: Extractor, state, *, split_videos: bool
) -> None:
    """Prepare one video (or this process's part of it); a video that fails is reported and
    skipped, a full disk stops the run."""
    part = (state.process_index, state.num_processes) if split_videos else (0, 1)
    failure_file = out / "failures" / f"{source_video_id(path)}.json"
    record = None
    try:
        if is_url(path):  # a failed download is one line, like a corrupt file; the others go on
            local = download_once(path, state) if split_videos else download_video(path)
            record = prepare_video(local, out, config, extractor, position=1, url=path, part=part)
        else:
            record = prepare_video(path, out, config, extractor, position=1, part=part)
        if failure_file.exists() and not split_videos:
            failure_file.unlink()
    except KeyboardInterrupt:
        raise
    except Exception as error:  # report, skip, go on with the other videos
        if is_full_disk(error, out):  # not the video's fault: stop (shards are atomic: none half-written)
            raise DiskFullError(out) from None
        _skip(path, error, failure_file)
    if split_videos:  # every part done: the main process records the video if all its shards are
        state.wait_for_everyone()
        if state.is_main_process and record is not None and finish_split_video(record, out):
            if failure_file.exists():
                failure_file.unlink()


def _prepared_and_skipped(out: Path, sources: list) -> tuple[list[dict], list[dict]]:
    """The records of the videos prepared and why each other one was not."""
    records, skipped = [], []
    for path in sources:
        record_path = out / "videos" / source_video_id(path) / "video.json"
        failure_file = out / "failures" / f"{source_video_id(path)}.json"
        if record_path.is_file():
            records.append(json.loads(record_path.read_text()))
        elif failure_file.is_file():
            skipped.append(json.loads(failure_file.read_text()))
        else:
            skipped.append({"source": str(path), "error": "not prepared (its process did not finish)"})
    if not records:
        raise UserError(
            f"none of the {len(sources)} video(s) could be prepared",
            "See the messages above; the files may be corrupt or not videos.",
        )
    return records, skipped


def _manifest(
    out: Path, config: PrepareConfig, extractor: Extractor, records: list[dict], skipped: list[dict]
) -> dict:
    """The dataset's ``manifest.json``: its settings, statistics, totals and videos."""
    stats = compute_stats(out, records, config)
    width, height = parse_resolution(config.resolution)
    return {
        "format": prepared.FORMAT,
        "created_unix": int(time.time()),
        "resolution": [width, height],
        "fps": config.fps,
        "depth_kind": "inverse_relative",
        "channels": prepared.CHANNEL_DOCS,
        "decode": to_dict(config.decode_config()),
        "extract_config": to_dict(config.extract),
        "extractors": extractor.settings(),
        "stats": stats.to_dict(),
        "totals": {
            "videos": len(records),
            "train_frames": sum(r["splits"]["train"]["num_frames"] for r in records),
            "val_frames": sum(r["splits"]["val"]["num_frames"] for r in records),
        },
        # videos whose stream ended before their container's declared frame count (truncated files)
        "ended_early": [
            {"source": r["source"], **r["decode"]}
            for r in records
            if (r.get("decode") or {}).get("ended_early")
        ],
        "videos": records,
        "skipped": skipped,
    }


def prepare_dataset(config: PrepareConfig) -> dict | None:
    """Prepare every video (this process's share of them); the main process returns the manifest."""
    # on a CPU-only machine, `accelerate launch --multi_gpu` ranks still need the gloo backend
    state = PartialState(cpu=not torch.cuda.is_available())
    out = Path(config.out)
    sources = _sources(config)
    config.decode_config()  # validate before any work
    claim_output_folder(out, kind=PREPARED_KIND, recognise=is_prepared_folder, replaces=False)
    state.wait_for_everyone()  # every process checks the folder before any of them writes to it
    lock = lock_dataset_folder(out, state)  # one prepare_data per folder at a time: none mixes it
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_output_marker(out, kind=PREPARED_KIND)
    state.wait_for_everyone()
    # fewer videos than processes: every process extracts a contiguous part of every video's
    # shards; else each takes whole videos (every world-th), which decodes each video once
    split_videos = 1 < state.num_processes and len(sources) < state.num_processes
    mine = sources if split_videos else sources[state.process_index :: state.num_processes]
    extractor = Extractor(config.extract)
    for path in tqdm(
        mine, desc=f"videos (process {state.process_index})", unit="video", disable=len(mine) < 2
    ):
        _prepare_one(path, out, config, extractor, state, split_videos=split_videos)
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    manifest = _manifest(out, config, extractor, *_prepared_and_skipped(out, sources))
    atomic_write_json(out / "manifest.json", manifest)
    release_dataset_folder(lock)
    return manifest
