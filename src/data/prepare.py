"""Videos -> a prepared dataset (frames + extracted raw channels in shards, and a manifest).

A video is streamed, never held whole: its decoded frames go to a temporary raw file beside its
shards, the flat-colour palette is fitted on the 16 evenly spaced training frames it samples, and
the conditions are extracted one shard at a time, so peak memory does not grow with its length.

Resumable: shards are written atomically and skipped when present; a video whose ``video.json``
exists with the same settings and the same content is skipped without decoding (its content is
keyed by size and modification time, then by a SHA-256 of the file when those changed, so a video
fetched again at the same path is prepared again). A corrupt or unsupported file is reported and
skipped; a full disk stops the run with one line. The output folder is marked as a prepared
dataset; an existing folder that is not one is refused (``src/common/io.py``). Under ``accelerate launch`` each process takes every ``world``-th video
(``accelerate.PartialState``); with fewer videos than processes (one long video), every process
decodes each video and extracts a contiguous part of its shards instead, and the main process
writes its ``video.json`` once all parts are done; the shards are the same as one process
writes. The main process writes the manifest once all videos are done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from src.common.config import parse_resolution, to_dict
from src.common.errors import UserError
from src.common.io import DiskFullError, atomic_write_json, is_full_disk
from src.common.outputs import claim_output_folder, write_output_marker
from src.conditions.encode import StatsAccumulator
from src.conditions.extract import Extractor
from src.conditions.flat_color import fit_frame_indices
from src.data import prepared
from src.data import sources as embedded
from src.data.config import PrepareConfig  # the settings live apart, free of cv2, av and torch
from src.data.dataset_lock import lock_dataset_folder, release_dataset_folder
from src.data.decode import DecodeReport, iter_video_frames, probe_video, split_index
from src.data.download import download_once, download_video, expand_video_sources, is_url, url_video_id
from src.data.sidecar import sidecar_for_video, sidecar_key


def video_id(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem)[:40]
    return f"{stem}-{digest}"


def source_video_id(source: str | Path) -> str:
    """The id of a video file or of a URL's download (known before it is downloaded)."""
    return url_video_id(source) if is_url(source) else video_id(Path(source))


def _settings_digest(config: PrepareConfig) -> str:
    values = to_dict(config.decode_config()) | {
        "extract": to_dict(config.extract),
        "shard_frames": config.shard_frames,
    }
    return hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


PREPARED_KIND = "prepared dataset"


def is_prepared_folder(folder: Path) -> bool:
    """A dataset folder written before output markers, or locked by a prepare_data stopped before it
    wrote its marker: only what ``prepare_dataset`` writes (.lock: src/common/folder_lock.py)."""
    return {child.name for child in folder.iterdir()} <= {"manifest.json", "videos", "failures", ".lock"}


def content_key(path: Path, record: dict | None) -> dict:
    """The video file's size, modification time and SHA-256; the hash is taken from ``record``
    (an earlier run's) when size and time are unchanged, else computed from the file."""
    stat = path.stat()
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    previous = (record or {}).get("source_key") or {}
    if (
        previous.get("size") == key["size"]
        and previous.get("mtime_ns") == key["mtime_ns"]
        and previous.get("sha256")
    ):
        return key | {"sha256": previous["sha256"]}
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return key | {"sha256": digest.hexdigest()}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _shard_done(path: Path, digest: str) -> bool:
    """A shard from an earlier (possibly killed) run with the same settings."""
    if not path.is_file():
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            return (handle.metadata() or {}).get("settings_digest") == digest
    except Exception:  # unreadable: write it again
        return False


def prepare_video(
    path: Path,
    out: Path,
    config: PrepareConfig,
    extractor: Extractor,
    *,
    position: int = 0,
    url: str | None = None,
    part: tuple[int, int] = (0, 1),
) -> dict:
    """Decode, split, extract and shard one video; returns its record (also saved as video.json).
    ``url``: where ``path`` was downloaded from (its id then comes from the URL).

    ``part=(i, n)``: this process extracts only the ``i``-th of ``n`` contiguous runs of the
    video's shards (it still decodes the whole video: the split and the palette need every
    frame, and decoding is a small share of the time), and writes no ``video.json``: the caller
    does once every part is done (``prepare_dataset``). A run's first frame takes its flow from
    the frame before it, as in one process, so the shards are the same."""
    from src.common.progress import tqdm  # plain lines when the output is not a terminal

    vid = source_video_id(url or path)
    folder = out / "videos" / vid
    record_path = folder / "video.json"
    try:
        previous = json.loads(record_path.read_text()) if record_path.is_file() else None
    except (OSError, ValueError):
        previous = None
    source_key = content_key(path, previous)
    # shards are keyed on the settings and on the video's content
    key = f"{_settings_digest(config)}:{source_key['sha256']}{sidecar_key(path)}"  # sidecar: src/data/sidecar.py
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    if previous is not None:
        if previous.get("settings_digest") == digest and all(
            prepared.shard_is_complete(folder / s["file"]) for s in previous["shards"]
        ):
            _log_ended_early(previous)
            return previous
        if ((previous.get("source_key") or {}).get("sha256") or source_key["sha256"]) != source_key["sha256"]:
            _log(f"{path} changed since it was prepared into {folder}: preparing it again")
    decode = config.decode_config()
    info = probe_video(path)
    # frames decoded, then frames extracted: the expected count from the container's duration
    expected = None
    if info.duration_s:
        end = min(info.duration_s, decode.end_s) if decode.end_s is not None else info.duration_s
        expected = max(0, round((end - decode.start_s) * decode.fps))
        expected = min(expected, decode.max_frames) if decode.max_frames is not None else expected
    decoding = tqdm(total=expected, desc=f"{vid} decode", unit="frame", position=position, leave=False,
                    dynamic_ncols=True)  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    # decoded frames stream to a raw file beside the shards and are read back one shard at a time,
    # so memory stays flat in the video's length (the split needs the frame count first)
    with _FrameSpool(folder) as spool:
        report = DecodeReport(str(path))
        for frame in iter_video_frames(path, decode, report=report):
            spool.append(frame)
            decoding.update()
        decoding.close()
        num_frames = len(spool)
        first_val = split_index(num_frames, decode.val_fraction)
        if num_frames < 2:
            raise UserError(
                f"{path}: only {num_frames} frame(s) after resampling", "Use a longer video or a higher fps."
            )
        sidecar = sidecar_for_video(path, info=info, report=report, decode=decode, num_frames=num_frames)
        # the palette sees the same few evenly spaced training frames as when fitted on all of them
        fit_count = first_val if first_val > 0 else num_frames
        extractor.fit(np.stack([spool.read(int(i), int(i) + 1)[0] for i in fit_frame_indices(fit_count)]))

        shards = []
        for split, lo, hi in (("train", 0, first_val), ("val", first_val, num_frames)):
            for index, start in enumerate(range(lo, hi, config.shard_frames)):
                stop = min(start + config.shard_frames, hi)
                shards.append(
                    {
                        "file": prepared.shard_name(split, index),
                        "split": split,
                        "start": start,
                        "num_frames": stop - start,
                    }
                )
        index, count = part
        mine = shards[len(shards) * index // count : len(shards) * (index + 1) // count]
        bar = tqdm(total=sum(s["num_frames"] for s in mine), desc=f"{vid} extract", unit="frame",
                   position=position, leave=False, dynamic_ncols=True)  # fmt: skip
        for shard in mine:
            start, stop = shard["start"], shard["start"] + shard["num_frames"]
            if not _shard_done(folder / shard["file"], digest):
                # the val part starts a new clip: its first flow would otherwise look at a train frame
                with_previous = start > 0 and start != first_val
                frames = spool.read(start - 1 if with_previous else start, stop)
                previous = frames[0] if with_previous else None
                frames = frames[1:] if with_previous else frames
                channels = extractor.extract(frames, previous)
                if sidecar is not None:  # true depth (1/m) in place of the estimate
                    channels["depth"] = sidecar.inverse_depth(start, stop)
                channels["frames"] = frames
                prepared.write_shard(
                    folder / shard["file"],
                    channels,
                    {"video": vid, "split": shard["split"], "start": str(start), "settings_digest": digest},
                )
            bar.update(stop - start)
        bar.close()
    record = {
        "id": vid,
        "source": str(path),
        **({"url": url} if url else {}),
        "source_info": dataclasses.asdict(info),
        "num_frames": num_frames,
        "split_index": first_val,
        "splits": {
            "train": {"start": 0, "num_frames": first_val},
            "val": {"start": first_val, "num_frames": num_frames - first_val},
        },
        "shards": shards,
        "decode": report.to_dict(),
        "settings_digest": digest,
        "source_key": source_key,
        **(sidecar.record() if sidecar is not None else {"depth_source": "estimate"}),
    }
    if count == 1:
        _log_ended_early(record)
        atomic_write_json(record_path, record)
    return record


def finish_split_video(record: dict, out: Path) -> bool:
    """Write the ``video.json`` of a video whose shards several processes extracted, once every
    shard is there with the record's settings; False (nothing written) when one is missing."""
    folder = out / "videos" / record["id"]
    if not all(_shard_done(folder / s["file"], record["settings_digest"]) for s in record["shards"]):
        return False
    _log_ended_early(record)
    atomic_write_json(folder / "video.json", record)
    return True


class _FrameSpool:
    """Equal-sized uint8 frames appended to a raw file and read back by index range (copies, not a
    memory map, so pages read do not stay in the process's memory). The file is an unnamed temporary
    file in ``folder`` (on the dataset's disk, not in a RAM-backed /tmp): it has no name to leave
    behind, and its space is freed when it is closed or the process ends, even when killed."""

    def __init__(self, folder: Path):
        self.shape: tuple[int, ...] | None = None
        self.count = 0
        self.file = tempfile.TemporaryFile(dir=folder, prefix=".frames-", suffix=".u8.tmp")  # noqa: SIM115

    def __enter__(self) -> _FrameSpool:
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def __len__(self) -> int:
        return self.count

    def append(self, frame: np.ndarray) -> None:
        if self.shape is None:
            self.shape = frame.shape
        elif frame.shape != self.shape:
            raise ValueError(f"frame shape {frame.shape} differs from the first frame's {self.shape}")
        self.file.seek(0, os.SEEK_END)
        self.file.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        self.count += 1

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` as a ``t h w c`` uint8 array."""
        assert self.shape is not None and 0 <= start < stop <= self.count
        frame_bytes = int(np.prod(self.shape))
        self.file.flush()
        self.file.seek(start * frame_bytes)
        frames = np.empty((stop - start, *self.shape), np.uint8)
        if self.file.readinto(memoryview(frames).cast("B")) != frames.nbytes:
            raise OSError(f"the temporary frame file is shorter than the {self.count} frames written to it")
        return frames


def _log_ended_early(record: dict) -> None:
    """One line for a video whose stream ended before its container's declared frame count."""
    decode = record.get("decode") or {}
    if decode.get("ended_early"):
        why = f" ({decode['decode_error']})" if decode.get("decode_error") else ""
        _log(
            f"{record['source']}: the video ends early: decoded {decode['decoded_source_frames']} of the "
            f"{decode['expected_source_frames']} frames its container declares{why}; using the decoded frames"
        )


def compute_stats(out: Path, records: list[dict], config: PrepareConfig):
    """``ConditionStats`` over the training frames of all prepared videos."""
    from safetensors.numpy import load_file

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
    _log(f"skipped {path}: {message}")
    atomic_write_json(failure_file, {"source": str(path), "error": message})


def prepare_dataset(config: PrepareConfig) -> dict | None:
    """Prepare every video (this process's share of them); the main process returns the manifest."""
    import torch
    from accelerate import PartialState

    from src.common.progress import tqdm  # plain lines when the output is not a terminal

    # on a CPU-only machine, `accelerate launch --multi_gpu` ranks still need the gloo backend
    state = PartialState(cpu=not torch.cuda.is_available())
    out = Path(config.out)
    # --defaults adds the embedded clips (read through the module: tests replace it) to --videos
    sources = expand_video_sources(
        [*config.videos, *(embedded.embedded_street_videos() if config.defaults else [])]
    )
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
    part = (state.process_index, state.num_processes) if split_videos else (0, 1)
    extractor = Extractor(config.extract)
    failures_dir = out / "failures"
    for path in tqdm(
        mine, desc=f"videos (process {state.process_index})", unit="video", disable=len(mine) < 2
    ):
        failure_file = failures_dir / f"{source_video_id(path)}.json"
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

    state.wait_for_everyone()
    if not state.is_main_process:
        return None

    records, skipped = [], []
    for path in sources:
        record_path = out / "videos" / source_video_id(path) / "video.json"
        failure_file = failures_dir / f"{source_video_id(path)}.json"
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
    stats = compute_stats(out, records, config)
    width, height = parse_resolution(config.resolution)
    manifest = {
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
    atomic_write_json(out / "manifest.json", manifest)
    release_dataset_folder(lock)
    return manifest
