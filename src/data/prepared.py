"""The prepared-dataset format: safetensors shards plus one ``manifest.json``.

::

    <out>/manifest.json                          sources, fps, resolution, splits, extractors, statistics
    <out>/videos/<video_id>/video.json           one video's record (written when all its shards are)
    <out>/videos/<video_id>/<split>-NNNN.safetensors

Each shard holds consecutive frames of one video and one split (never both):
``frames`` t h w 3 uint8 RGB, ``depth`` t h w float16 relative inverse depth, ``flow`` t h w 2
float16 (``x_t - x_{t-1}``, pixels), ``albedo`` t h w 3 uint8 flat colour. Channels are stored raw;
``encode`` and augmentation run at load time with the statistics stored in the manifest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save

from src.common.errors import UserError
from src.common.io import atomic_path

FORMAT = "velodream-prepared/1"
SPLITS = ("train", "val", "all")
SHARD_KEYS = ("frames", "depth", "flow", "albedo")
STORED_DTYPES = {"frames": np.uint8, "depth": np.float16, "flow": np.float16, "albedo": np.uint8}
CHANNEL_DOCS = {
    "frames": "t h w 3 uint8 RGB",
    "depth": "t h w float16 relative inverse depth (larger = nearer; depth_kind inverse_relative)",
    "flow": "t h w 2 float16 x_t - x_{t-1} in pixels of frame t (x right, y down); first frame of a video 0",
    "albedo": "t h w 3 uint8 flattened, colour-quantised frame",
    "normals": "not stored: encode derives them from depth with normals_from_depth",
}


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:04d}.safetensors"


def write_shard(path: Path, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write one shard atomically (a killed run never leaves a half-written shard)."""
    tensors = {key: np.ascontiguousarray(arrays[key].astype(STORED_DTYPES[key])) for key in SHARD_KEYS}
    with atomic_path(path) as tmp:
        tmp.write_bytes(save(tensors, metadata=metadata))  # bytes first: a full disk raises an OSError


def read_shard_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of one shard, as stored."""
    shard_header(Path(path))  # a truncated shard is one line, not a safetensors traceback
    return load_file(str(path))


DEFAULT_DATASET = "data/prepared/default"  # what `prepare_data --defaults` fills (conf/cpu_tiny.yaml)


def prepare_hint(directory: str | Path) -> str:
    """What to run to make the dataset ``directory``: the embedded clips for the default dataset,
    else the user's own videos from data/real_videos/ at the size the dataset's name gives
    (``lowres_224`` -> 224x224; the GPU presets train at 24 fps)."""
    directory = Path(directory)
    if directory == Path(DEFAULT_DATASET):
        return f"Run `uv run python -m src.scripts.prepare_data --defaults --out {directory}` first."
    size = re.search(r"_(\d{2,4})$", directory.name)
    resolution = f"{size.group(1)}x{size.group(1)}" if size else "WxH"
    return (
        f"Put your videos in data/real_videos/ and run `uv run python -m src.scripts.prepare_data --videos "
        f"data/real_videos --out {directory} --resolution {resolution} --fps 24` first (the size and rate "
        f"to train at; the comment at the top of each GPU preset in conf/ names its own)."
    )


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / "manifest.json"
    if not path.is_file():
        raise UserError(
            f"no prepared dataset at {directory} (manifest.json missing)", prepare_hint(directory)
        )
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, OSError) as error:
        raise UserError(
            f"{path} cannot be read ({type(error).__name__}: {error})",
            "It is damaged: run the same prepare_data command again, which rewrites it.",
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        manifest = manifest if isinstance(manifest, dict) else {}
        raise UserError(
            f"{path} has format {manifest.get('format')!r}, expected {FORMAT!r}", "Re-run prepare_data."
        )
    return manifest


class ShardReader:
    """Reads frame ranges of shards as memory maps: a shard's header is parsed once, and a read is
    a numpy view of the file (no copy until the caller copies the slice it keeps)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._open: dict[str, dict[str, np.ndarray]] = {}

    def arrays(self, file: str) -> dict[str, np.ndarray]:
        """Every array of one shard (``file`` relative to the root), memory-mapped read-only."""
        if file not in self._open:
            self._open[file] = memory_map_shard(self.root / file)
        return self._open[file]

    def read(self, file: str, key: str, start: int, stop: int, step: int = 1) -> np.ndarray:
        return self.arrays(file)[key][start:stop:step]

    def __getstate__(self):  # DataLoader workers map the files themselves
        return {"root": self.root, "_open": {}}


SAFETENSORS_DTYPES = {"U8": np.uint8, "F16": np.float16, "F32": np.float32, "I64": np.int64}


def shard_header(path: Path) -> tuple[int, dict]:
    """(header size, header) of a safetensors shard whose data is all there; a truncated or
    garbled shard is a one-line UserError."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            if not 2 <= header_size <= size - 8:
                raise ValueError(f"header of {header_size} bytes in a file of {size}")
            header = json.loads(handle.read(header_size))
        ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
        if 8 + header_size + max(ends, default=0) > size:
            raise ValueError(f"{size} bytes, the header needs {8 + header_size + max(ends)}")
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise UserError(
            f"the prepared shard {path} is damaged or truncated ({error})",
            "Run the same prepare_data command again: it re-makes damaged shards.",
        ) from None
    return header_size, header


def shard_is_complete(path: Path) -> bool:
    """Whether ``path`` is a shard whose header and data are all there (``shard_header``)."""
    try:
        shard_header(path)
    except (UserError, OSError):
        return False
    return True


def memory_map_shard(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a safetensors file as read-only ``np.memmap`` views, without reading their data.

    The format is an 8-byte little-endian header length, a JSON header (``dtype``, ``shape`` and
    ``data_offsets`` of each tensor, offsets counted from the end of the header), then the data,
    row-major: each tensor is one contiguous run of the file, so a slice of it is a plain view.
    """
    path = Path(path)
    header_size, header = shard_header(path)
    file_map = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        start = 8 + header_size + begin
        out[key] = (
            file_map[start : 8 + header_size + end]
            .view(SAFETENSORS_DTYPES[entry["dtype"]])
            .reshape(entry["shape"])
        )
    return out


def segments(manifest: dict, split: str) -> list[dict]:
    """Contiguous frame runs of one split, one per video: ``{"video", "num_frames", "shards"}``,
    where each shard entry has ``file`` (relative to the dataset root), ``start`` (frame index within
    the segment) and ``num_frames``. ``split="all"`` joins each video's train and val parts into one
    run of every frame (a clip no model trained on this dataset saw, or one evaluated whole)."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}", f"Use {', '.join(SPLITS)}.")
    out = []
    for video in manifest["videos"]:
        shards, offset = [], 0
        for shard in sorted(video["shards"], key=lambda s: s["start"]):
            if split != "all" and shard["split"] != split:
                continue
            shards.append(
                {
                    "file": f"videos/{video['id']}/{shard['file']}",
                    "start": offset,
                    "num_frames": shard["num_frames"],
                }
            )
            offset += shard["num_frames"]
        if offset:
            out.append({"video": video["id"], "num_frames": offset, "shards": shards})
    return out


def read_segment_range(
    reader: ShardReader,
    segment: dict,
    key: str,
    start: int,
    stop: int,
    step: int = 1,
    window: tuple[slice, slice] = (slice(None), slice(None)),
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Frames ``start:stop:step`` (segment-relative) of one key, cut to ``window`` (rows, columns):
    one slice of each memory-mapped shard the range crosses, copied once, into ``out`` when given
    (else a new array)."""
    if not 0 <= start < stop <= segment["num_frames"]:
        raise IndexError(f"frames {start}:{stop} outside segment of {segment['num_frames']} frames")
    pieces = []
    for shard in segment["shards"]:
        first, end = shard["start"], shard["start"] + shard["num_frames"]
        if end <= start or first >= stop:
            continue
        # the first frame of the range inside this shard that lies on the step's grid
        local_start = start if first <= start else first + (start - first) % step
        if local_start >= min(stop, end):
            continue
        array = reader.arrays(shard["file"])[key]
        pieces.append(array[local_start - first : min(stop, end) - first : step, window[0], window[1]])
    if out is None:
        return np.concatenate(pieces) if len(pieces) > 1 else np.array(pieces[0])
    position = 0
    for piece in pieces:
        out[position : position + len(piece)] = piece
        position += len(piece)
    if position != len(out):
        raise ValueError(f"{position} frames read into an array of {len(out)}")
    return out
