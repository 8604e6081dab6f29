"""True depth from a ``<video>.depth.npz`` sidecar (LiDAR or stereo), in place of the estimate.

A sidecar holds, per frame of its video, sparse camera-space depth in metres (OpenCV camera z,
not the ray length; 0 = no point) on a pixel grid of the video's aspect (any size: the PandaSet
clips' maps are half the video's size), and optionally per-point class ids with their names.
``prepare_data`` takes it when a video has one (``src/data/video_shards.py``):

- each prepared frame takes the sidecar frame of the source frame the decoder chose for it
  (the same nearest-frame rule at the same times as ``src/data/decode.py``); a frame marked
  invalid (``valid_frames`` false: no sweep) takes the nearest valid frame in time instead;
- the sparse points are densified on the sidecar's own grid (``densify``): above the highest
  point of each column is sky (the game's ``SKY_DEPTH_M``); elsewhere each pixel takes the class
  of its nearest point and the inverse depth of the points of that class around it (normalised
  convolution within the class, so a car's depth never bleeds into the road behind it);
- the dense map is centre-cropped and resized exactly as the frames are
  (``center_crop_resize``), area-averaging inverse depth;
- it is stored as inverse depth in 1/m: ``encode`` divides inverse depth by its per-frame median,
  so a stored ``1/z`` encodes to the same values as the game's metric depth (``depth_kind``
  ``metric``), and the normals ``encode`` derives from it come from the same function.
"""

from __future__ import annotations

import dataclasses
import hashlib
from fnmatch import fnmatch
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt

from src.common.config import parse_resolution
from src.common.errors import UserError
from src.common.gbuffer import SEMANTIC_CLASSES, SKY_DEPTH_M
from src.data.decode import decode_video_with_report, probe_video

SIDECAR_SUFFIX = ".depth.npz"
GROUND = ("road", "lane_marking", "sidewalk", "curb")  # the game classes whose plane is extended
UNMAPPED_CLASS = 255  # a sidecar class with no game class (pedestrians, smoke, other objects)
FORMAT_HINT = (
    "A sidecar is an .npz with depth (frames, H, W) in metres (0 = no point) and valid_frames "
    "(frames,) bool, optionally semantic (frames, H, W) uint8 with class_names and K_map; see "
    "README.md's data section. Fix it, or move it away to use the estimated depth."
)

# sidecar class names (lower case; PandaSet's, and the game's own) -> the game's class ids
# (src/common/gbuffer.py SEMANTIC_CLASSES, unchanged); any other name is UNMAPPED_CLASS
_GAME_CLASS_OF_NAME = {
    **{name: name for name in SEMANTIC_CLASSES},
    "vegetation": "tree",
    "ground": "sidewalk",
    "road": "road",
    "driveway": "road",
    "lane line marking": "lane_marking",
    "stop line marking": "lane_marking",
    "other road marking": "lane_marking",
    "sidewalk": "sidewalk",
    "road barriers": "curb",
    "building": "building",
    "pylons": "pole",
    "signs": "pole",
    "other static object": "pole",  # PandaSet's poles, posts and boxes (src/bench/city_palette.py too)
    "bicycle": "bicycle",
    "personal mobility device": "bicycle",
    "motorized scooter": "bicycle",
}
_VEHICLE_NAMES = ("car", "*truck", "towed object", "motorcycle", "other vehicle*", "emergency vehicle",
                  "bus", "train", "trolley", "tram*")  # fmt: skip


def game_class_table(class_names: list[str]) -> np.ndarray:
    """A 256-entry uint8 lookup from sidecar class ids to the game's ids (255: no game class)."""
    table = np.full(256, UNMAPPED_CLASS, np.uint8)
    for index, name in enumerate(class_names[:255]):
        key = str(name).strip().lower()
        game = _GAME_CLASS_OF_NAME.get(key)
        if game is None and any(fnmatch(key, pattern) for pattern in _VEHICLE_NAMES):
            game = "vehicle"
        if game is not None:
            table[index] = SEMANTIC_CLASSES[game]
    return table


def sidecar_path(video: Path) -> Path:
    """Where a video's sidecar would be: ``city.mp4`` -> ``city.depth.npz`` beside it."""
    return video.parent / f"{video.stem}{SIDECAR_SUFFIX}"


def source_frame_indices(
    num_output: int, *, fps: float, start_s: float, source_fps: float, num_source: int
) -> np.ndarray:
    """The source frame behind each output frame, by ``iter_video_frames``'s rule: output time
    ``start_s + k / fps`` takes the first source frame at or after it, or the one before when that
    is strictly nearer (source frame ``i`` at ``i / source_fps``)."""
    targets = start_s + np.arange(num_output) / fps
    after = np.ceil((targets - 1e-6) * source_fps - 1e-9).astype(np.int64).clip(0, num_source - 1)
    before = (after - 1).clip(0)
    nearer_before = np.abs(before / source_fps - targets) < np.abs(after / source_fps - targets)
    return np.where((after > 0) & nearer_before, before, after)


def nearest_valid(indices: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each index, or the nearest valid one in time where it is invalid (the earlier on a tie)."""
    valid_ids = np.flatnonzero(valid)
    position = np.searchsorted(valid_ids, indices).clip(0, len(valid_ids) - 1)
    earlier = valid_ids[(position - 1).clip(0)]
    later = valid_ids[position]
    return np.where(np.abs(indices - earlier) <= np.abs(later - indices), earlier, later)


def _sky_mask(has_point: np.ndarray) -> np.ndarray:
    """Pixels above the highest point of their column (that column's neighbours' highest within
    ±1 % of the width, so a stray gap in one column does not open a hole): the sky, where no
    LiDAR return comes from. Columns without any point are sky down to the frame's middle."""
    h, w = has_point.shape
    top = np.where(has_point.any(axis=0), has_point.argmax(axis=0), h // 2)
    radius = max(1, w // 100)
    padded = np.pad(top, radius, mode="edge")
    top = np.min(np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1), axis=1)
    return np.arange(h)[:, None] < top[None, :]


def _extend_ground(inverse, labels, point_inverse, point_class, has_point, ground_ids) -> None:
    """Below each column's lowest point (the LiDAR misses the ground just in front of the camera),
    the ground plane fitted to the ground classes' points: inverse depth is linear in the image
    for a plane (``a v + b u + c``), so a least-squares fit extends it. In place; nothing without
    50 ground points."""
    ground = has_point & np.isin(point_class, ground_ids)
    if ground.sum() < 50:
        return
    rows, cols = np.nonzero(ground)
    design = np.stack([rows, cols, np.ones_like(rows)], axis=1).astype(np.float64)
    plane = np.linalg.lstsq(design, point_inverse[ground].astype(np.float64), rcond=None)[0]
    h, w = has_point.shape
    lowest = np.where(has_point.any(axis=0), h - 1 - np.argmax(has_point[::-1], axis=0), h)
    vv, uu = np.mgrid[0:h, 0:w]
    value = plane[0] * vv + plane[1] * uu + plane[2]
    below = (vv > lowest[None, :]) & (value > 0)
    inverse[below] = value[below]
    labels[below] = np.bincount(point_class[ground]).argmax()


def densify(
    depth_m: np.ndarray,
    classes: np.ndarray | None = None,
    *,
    sigma_px: float = 2.0,
    ground_ids: list[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sparse depth (``h w`` metres, 0 = none) and its points' classes (``h w`` uint8) -> dense
    inverse depth (``h w`` float32, 1/m) and a dense class map (sky = the game's sky id, 0).

    Not sky: each pixel takes the class of its nearest point, and the Gaussian-weighted mean inverse
    depth of that class's points around it (``sigma_px`` on the sidecar's grid; the nearest point's
    own where none is near). Inverse depth is linear over the image for a plane, so roads and walls
    interpolate without steps and their normals come out flat. ``ground_ids``: the classes of the
    ground, whose plane continues below the lowest points (``_extend_ground``)."""
    depth_m = np.asarray(depth_m, np.float32)
    has_point = np.isfinite(depth_m) & (depth_m > 0)
    sky = _sky_mask(has_point)
    inverse = np.full(depth_m.shape, 1.0 / SKY_DEPTH_M, np.float32)
    labels = np.full(depth_m.shape, SEMANTIC_CLASSES["sky"], np.uint8)
    if not has_point.any():
        return inverse, labels
    point_inverse = np.where(has_point, 1.0 / np.where(has_point, depth_m, 1.0), 0.0).astype(np.float32)
    point_class = np.zeros(depth_m.shape, np.uint8) if classes is None else np.asarray(classes, np.uint8)
    nearest = distance_transform_edt(~has_point, return_distances=False, return_indices=True)
    near_inverse = point_inverse[nearest[0], nearest[1]]
    near_class = point_class[nearest[0], nearest[1]]
    filled = near_inverse.copy()
    for value in np.unique(point_class[has_point]):
        mask = (has_point & (point_class == value)).astype(np.float32)
        weight = cv2.GaussianBlur(mask, (0, 0), sigma_px)
        total = cv2.GaussianBlur(point_inverse * mask, (0, 0), sigma_px)
        use = (near_class == value) & (weight > 1e-3)
        filled[use] = total[use] / weight[use]
    if ground_ids:
        _extend_ground(filled, near_class, point_inverse, point_class, has_point, ground_ids)
    inverse = np.where(sky, inverse, np.maximum(filled, 1.0 / SKY_DEPTH_M))
    labels = np.where(sky, labels, near_class)
    return inverse.astype(np.float32), labels.astype(np.uint8)


def crop_box(source_size: tuple[int, int], target_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """``center_crop_resize``'s crop (x0, y0, width, height) of a ``source_size`` (w, h) frame
    for a ``target_size`` (w, h) output, in source pixels."""
    w, h = source_size
    target_aspect = target_size[0] / target_size[1]
    if w / h > target_aspect:
        crop_w = max(1, round(h * target_aspect))
        return (w - crop_w) // 2, 0, crop_w, h
    crop_h = max(1, round(w / target_aspect))
    return 0, (h - crop_h) // 2, w, crop_h


@dataclasses.dataclass
class DepthSidecar:
    """A validated sidecar for one video, turning prepared frame ranges into inverse depth."""

    path: Path
    depth: np.ndarray  # n H W, metres (0 = no point)
    valid: np.ndarray  # n bool
    classes: np.ndarray | None  # n H W uint8 (the sidecar's ids), or None
    class_names: list[str] | None
    focal_y_px: float | None  # on the sidecar's grid (K_map[1, 1]), when given
    video_size: tuple[int, int]  # (w, h) of the video's frames (display orientation)
    output_size: tuple[int, int]  # (w, h) of the prepared frames
    source_ids: np.ndarray  # the sidecar frame of each prepared frame (invalid ones replaced)
    num_replaced: int  # prepared frames whose own sidecar frame was invalid

    def inverse_depth(self, start: int, stop: int) -> np.ndarray:
        """Prepared frames ``[start, stop)``: ``t h w`` float32 inverse depth in 1/m."""
        return np.stack([self._frame(int(i))[0] for i in self.source_ids[start:stop]])

    def game_classes(self, start: int, stop: int) -> np.ndarray:
        """Prepared frames ``[start, stop)``: ``t h w`` uint8 game class ids (255: none)."""
        return np.stack([self._frame(int(i))[1] for i in self.source_ids[start:stop]])

    def _frame(self, index: int) -> tuple[np.ndarray, np.ndarray]:

        table = None if self.class_names is None else game_class_table(self.class_names)
        ground = (
            None if table is None else np.flatnonzero(np.isin(table, [SEMANTIC_CLASSES[c] for c in GROUND]))
        )
        classes = None if self.classes is None else self.classes[index]
        inverse, labels = densify(
            self.depth[index], classes, ground_ids=None if ground is None else ground.tolist()
        )
        if table is not None:  # sky (0) stays sky: it is not one of the sidecar's ids
            labels = np.where(labels == SEMANTIC_CLASSES["sky"], labels, table[labels])
        grid_h, grid_w = inverse.shape
        scale_x, scale_y = grid_w / self.video_size[0], grid_h / self.video_size[1]
        x0, y0, cw, ch = crop_box(self.video_size, self.output_size)
        left, top = round(x0 * scale_x), round(y0 * scale_y)
        right, bottom = left + max(1, round(cw * scale_x)), top + max(1, round(ch * scale_y))
        inverse, labels = inverse[top:bottom, left:right], labels[top:bottom, left:right]
        shrinking = inverse.shape[1] > self.output_size[0]
        inverse = cv2.resize(
            inverse, self.output_size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        )
        labels = cv2.resize(labels, self.output_size, interpolation=cv2.INTER_NEAREST)
        return inverse.astype(np.float32), labels

    def fov_y_deg(self) -> float | None:
        """The vertical field of view of the prepared frames (from ``K_map``), or None."""
        if self.focal_y_px is None:
            return None
        crop_h = crop_box(self.video_size, self.output_size)[3] * self.depth.shape[1] / self.video_size[1]
        return float(np.degrees(2 * np.arctan(crop_h / 2 / self.focal_y_px)))

    def record(self) -> dict:
        """What the video's record says about where its channels came from."""
        return {
            "depth_source": "lidar_sidecar",
            "sidecar": {
                "path": str(self.path),
                "frames": int(len(self.depth)),
                "grid": [int(self.depth.shape[2]), int(self.depth.shape[1])],
                "invalid_frames_replaced": self.num_replaced,
                "invalid_frame_fallback": "nearest valid sidecar frame in time",
                "densify": "sky above each column's highest point; nearest point's class, "
                "normalised convolution of inverse depth within the class",
                "camera_fov_y_deg": None if self.fov_y_deg() is None else round(self.fov_y_deg(), 3),
                "normals": "normals_from_depth on this depth, in encode (as the game's)",
                "semantic": "available in the sidecar, mapped to the game's classes by "
                "src/data/sidecar.py game_class_table; not stored (the prepared format has no slot)"
                if self.class_names is not None
                else "none",
            },
        }


def content_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _fail(path: Path, what: str) -> UserError:
    return UserError(f"depth sidecar {path}: {what}", FORMAT_HINT)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as error:
        raise _fail(path, f"cannot be read as an .npz ({str(error).splitlines()[0]})") from None


def _check_arrays(path: Path, arrays: dict[str, np.ndarray], num_source: int | None, video_size) -> None:
    """One clear error for the first thing wrong with a sidecar's arrays."""
    missing = [key for key in ("depth", "valid_frames") if key not in arrays]
    if "semantic" in arrays and "class_names" not in arrays:
        missing.append("class_names (needed with semantic)")
    if missing:
        raise _fail(path, f"missing key(s) {', '.join(missing)}")
    depth, valid = arrays["depth"], arrays["valid_frames"]
    if depth.ndim != 3 or not np.issubdtype(depth.dtype, np.floating):
        raise _fail(path, f"depth must be a float (frames, H, W) array, got {depth.dtype} {depth.shape}")
    if num_source is not None and len(depth) != num_source:
        raise _fail(path, f"depth has {len(depth)} frames but the video has {num_source}")
    if valid.shape != (len(depth),) or valid.dtype != np.bool_:
        raise _fail(path, f"valid_frames must be bool ({len(depth)},), got {valid.dtype} {valid.shape}")
    if not valid.any():
        raise _fail(path, "no frame is marked valid")
    if "semantic" in arrays and arrays["semantic"].shape != depth.shape:
        raise _fail(path, f"semantic has shape {arrays['semantic'].shape}, depth {depth.shape}")
    grid_aspect, video_aspect = depth.shape[2] / depth.shape[1], video_size[0] / video_size[1]
    if abs(grid_aspect / video_aspect - 1) > 0.02:
        raise _fail(
            path, f"its {depth.shape[2]}x{depth.shape[1]} maps do not have the video's aspect "
            f"({video_size[0]}x{video_size[1]})",
        )  # fmt: skip


def open_sidecar(
    video: Path,
    *,
    num_source: int | None,
    source_fps: float,
    video_size: tuple[int, int],
    output_size: tuple[int, int],
    fps: float,
    start_s: float,
    num_output: int,
) -> DepthSidecar | None:
    """The video's validated sidecar, mapped onto its ``num_output`` prepared frames, or None when
    it has none. ``num_source``: the video's frame count (the sidecar must have one map each; None
    when the container does not say: the sidecar's own count is taken)."""
    path = sidecar_path(video)
    if not path.is_file():
        return None
    arrays = _read_arrays(path)
    _check_arrays(path, arrays, num_source, video_size)
    if not source_fps > 0:
        raise _fail(path, f"the video {video.name} declares no frame rate, so its frames cannot be matched")
    valid = arrays["valid_frames"]
    own = source_frame_indices(
        num_output, fps=fps, start_s=start_s, source_fps=source_fps, num_source=len(valid)
    )
    source_ids = nearest_valid(own, valid)
    has_classes = "semantic" in arrays
    focal = float(arrays["K_map"][1, 1]) if "K_map" in arrays and arrays["K_map"].shape == (3, 3) else None
    return DepthSidecar(
        path=path,
        depth=arrays["depth"],
        valid=valid,
        classes=arrays["semantic"].astype(np.uint8) if has_classes else None,
        class_names=[str(n) for n in arrays["class_names"]] if has_classes else None,
        focal_y_px=focal,
        video_size=video_size,
        output_size=output_size,
        source_ids=source_ids,
        num_replaced=int(np.sum(~valid[own])),
    )


def sidecar_key(video: Path) -> str:
    """A digest of the video's sidecar ("" without one): prepared shards are keyed on it, so
    adding, changing or removing a sidecar prepares the video again."""
    path = sidecar_path(video)
    return f":sidecar-{content_digest(path)}" if path.is_file() else ""


def decode_with_sidecar(video: Path, decode, *, sidecar: bool = True):
    """A video's frames decoded with ``decode`` (a ``DecodeConfig``) and, where ``sidecar`` is on
    and the video has one, its depth sidecar mapped onto them (else None)."""
    frames, report = decode_video_with_report(video, decode)
    if not sidecar:
        return frames, None
    found = sidecar_for_video(
        video, info=probe_video(video), report=report, decode=decode, num_frames=len(frames)
    )
    return frames, found


def sidecar_for_video(path: Path, *, info, report, decode, num_frames: int) -> DepthSidecar | None:
    """``open_sidecar`` for ``prepare_video``: ``info`` its ``VideoInfo``, ``report`` its
    ``DecodeReport`` (the container's exact frame count, else the frames decoded to the end),
    ``decode`` its ``DecodeConfig``."""
    if report.expected_frames is not None and report.expected_is_exact:
        num_source = report.expected_frames
    else:
        num_source = report.decoded_frames if report.reached_end else None
    return open_sidecar(
        path,
        num_source=num_source,
        source_fps=info.fps,
        video_size=(info.width, info.height),
        output_size=parse_resolution(decode.resolution),
        fps=decode.fps,
        start_s=decode.start_s,
        num_output=num_frames,
    )
