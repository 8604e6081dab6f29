"""One video -> its shards and its record (``video.json``) in a prepared dataset.

A video is streamed, never held whole: its decoded frames go to a temporary raw file beside its
shards (``FrameSpool``), the flat-colour palette is fitted on the 16 evenly spaced training frames
it samples, and the conditions are extracted one shard at a time, so peak memory does not grow
with its length. Shards are written atomically and skipped when present; a video whose
``video.json`` exists with the same settings and the same content is skipped without decoding
(its content is keyed by size and modification time, then by a SHA-256 of the file when those
changed, so a video fetched again at the same path is prepared again).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from safetensors import safe_open

from src.common.config import to_dict
from src.common.errors import UserError
from src.common.io import atomic_write_json
from src.common.progress import tqdm
from src.conditions.extract import Extractor
from src.conditions.flat_color import fit_frame_indices
from src.data import prepared
from src.data.config import PrepareConfig
from src.data.decode import DecodeReport, iter_video_frames, probe_video, split_index
from src.data.download import is_url, url_video_id
from src.data.frame_spool import FrameSpool
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


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _shard_done(path: Path, digest: str) -> bool:
    """A shard from an earlier (possibly killed) run with the same settings."""
    if not path.is_file():
        return False

    try:
        with safe_open(str(path), framework="numpy") as handle:
            return (handle.metadata() or {}).get("settings_digest") == digest
    except Exception:  # unreadable: write it again
        return False


def _read_record(record_path: Path) -> dict | None:
    """An earlier run's ``video.json``; None where there is none or it cannot be read."""
    try:
        return json.loads(record_path.read_text()) if record_path.is_file() else None
    except (OSError, ValueError):
        return None


def _expected_frames(info, decode) -> int | None:
    """The frames the decode should give, from the container's duration (None where unknown)."""
    if not info.duration_s:
        return None
    end = min(info.duration_s, decode.end_s) if decode.end_s is not None else info.duration_s
    expected = max(0, round((end - decode.start_s) * decode.fps))
    return min(expected, decode.max_frames) if decode.max_frames is not None else expected


def _decode_into(spool: FrameSpool, path: Path, decode, *, info, desc: str, position: int) -> DecodeReport:
    """Decode ``path`` into ``spool``; at least two frames, or a one-line error."""
    # frames decoded, then frames extracted: the expected count from the container's duration
    decoding = tqdm(total=_expected_frames(info, decode), desc=desc, unit="frame", position=position,
                    leave=False, dynamic_ncols=True)  # fmt: skip
    report = DecodeReport(str(path))
    for frame in iter_video_frames(path, decode, report=report):
        spool.append(frame)
        decoding.update()
    decoding.close()
    if len(spool) < 2:
        raise UserError(
            f"{path}: only {len(spool)} frame(s) after resampling", "Use a longer video or a higher fps."
        )
    return report


def _shard_plan(num_frames: int, first_val: int, shard_frames: int) -> list[dict]:
    """Every shard of a video: the training frames, then the held-out ones, in runs of
    ``shard_frames``."""
    shards = []
    for split, lo, hi in (("train", 0, first_val), ("val", first_val, num_frames)):
        for index, start in enumerate(range(lo, hi, shard_frames)):
            stop = min(start + shard_frames, hi)
            shards.append(
                {
                    "file": prepared.shard_name(split, index),
                    "split": split,
                    "start": start,
                    "num_frames": stop - start,
                }
            )
    return shards


def _extract_shards(
    spool: FrameSpool, shards: list[dict], *, folder: Path, vid: str, digest: str, first_val: int,
    extractor: Extractor, sidecar, progress,
) -> None:  # fmt: skip
    """Extract and write each of ``shards`` not already there from an earlier run."""
    for shard in shards:
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
        progress.update(stop - start)


def _still_prepared(
    previous: dict | None, *, digest: str, folder: Path, path: Path, source_key: dict
) -> bool:
    """Whether an earlier run's record holds this video with these settings and all its shards; a
    line when the file changed since."""
    if previous is None:
        return False
    if previous.get("settings_digest") == digest and all(
        prepared.shard_is_complete(folder / s["file"]) for s in previous["shards"]
    ):
        log_ended_early(previous)
        return True
    if ((previous.get("source_key") or {}).get("sha256") or source_key["sha256"]) != source_key["sha256"]:
        log(f"{path} changed since it was prepared into {folder}: preparing it again")
    return False


def _video_record(
    *, vid: str, path: Path, url: str | None, info, num_frames: int, first_val: int, shards: list[dict],
    report: DecodeReport, digest: str, source_key: dict, sidecar,
) -> dict:  # fmt: skip
    """A video's ``video.json``."""
    return {
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
    vid = source_video_id(url or path)
    folder = out / "videos" / vid
    record_path = folder / "video.json"
    previous = _read_record(record_path)
    source_key = content_key(path, previous)
    # shards are keyed on the settings and on the video's content
    key = f"{_settings_digest(config)}:{source_key['sha256']}{sidecar_key(path)}"  # sidecar: src/data/sidecar.py
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    if _still_prepared(previous, digest=digest, folder=folder, path=path, source_key=source_key):
        return previous
    decode = config.decode_config()
    info = probe_video(path)
    folder.mkdir(parents=True, exist_ok=True)
    # decoded frames stream to a raw file beside the shards and are read back one shard at a time,
    # so memory stays flat in the video's length (the split needs the frame count first)
    with FrameSpool(folder) as spool:
        report = _decode_into(spool, path, decode, info=info, desc=f"{vid} decode", position=position)
        num_frames = len(spool)
        first_val = split_index(num_frames, decode.val_fraction)
        sidecar = sidecar_for_video(path, info=info, report=report, decode=decode, num_frames=num_frames)
        # the palette sees the same few evenly spaced training frames as when fitted on all of them
        fit_count = first_val if first_val > 0 else num_frames
        extractor.fit(np.stack([spool.read(int(i), int(i) + 1)[0] for i in fit_frame_indices(fit_count)]))
        shards = _shard_plan(num_frames, first_val, config.shard_frames)
        index, count = part
        mine = shards[len(shards) * index // count : len(shards) * (index + 1) // count]
        bar = tqdm(total=sum(s["num_frames"] for s in mine), desc=f"{vid} extract", unit="frame",
                   position=position, leave=False, dynamic_ncols=True)  # fmt: skip
        _extract_shards(spool, mine, folder=folder, vid=vid, digest=digest, first_val=first_val,
                        extractor=extractor, sidecar=sidecar, progress=bar)  # fmt: skip
        bar.close()
    record = _video_record(vid=vid, path=path, url=url, info=info, num_frames=num_frames, first_val=first_val,
                           shards=shards, report=report, digest=digest, source_key=source_key, sidecar=sidecar)  # fmt: skip
    if count == 1:
        log_ended_early(record)
        atomic_write_json(record_path, record)
    return record


def finish_split_video(record: dict, out: Path) -> bool:
    """Write the ``video.json`` of a video whose shards several processes extracted, once every
    shard is there with the record's settings; False (nothing written) when one is missing."""
    folder = out / "videos" / record["id"]
    if not all(_shard_done(folder / s["file"], record["settings_digest"]) for s in record["shards"]):
        return False
    log_ended_early(record)
    atomic_write_json(folder / "video.json", record)
    return True


def log_ended_early(record: dict) -> None:
    """One line for a video whose stream ended before its container's declared frame count."""
    decode = record.get("decode") or {}
    if decode.get("ended_early"):
        why = f" ({decode['decode_error']})" if decode.get("decode_error") else ""
        log(
            f"{record['source']}: the video ends early: decoded {decode['decoded_source_frames']} of the "
            f"{decode['expected_source_frames']} frames its container declares{why}; using the decoded frames"
        )
