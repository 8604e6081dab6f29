"""A ``<video>.depth.npz`` sidecar (LiDAR/stereo depth) replaces the estimated depth in prepare_data:
the right sidecar frame behind each prepared frame, the same crop as the frames, invalid frames
from their nearest valid neighbour, and one clear error for a bad sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from src.common.errors import UserError
from src.common.gbuffer import SEMANTIC_CLASSES, SKY_DEPTH_M
from src.common.video import write_mp4
from src.data.config import DecodeConfig
from src.data.decode import decode_video
from src.data.sidecar import densify, game_class_table, open_sidecar, source_frame_indices

NUM_FRAMES, VIDEO_W, VIDEO_H, SOURCE_FPS = 12, 64, 48, 10.0
EDGE_X = 40  # the video column where the sidecar's near half ends (off the centre on purpose)


def _video(folder: Path) -> Path:
    """Frame i is a uniform grey of level 20 i + 10 with a little texture (for the decoder test)."""
    rng = np.random.default_rng(0)
    levels = 20 * np.arange(NUM_FRAMES) + 10
    frames = np.broadcast_to(levels[:, None, None, None], (NUM_FRAMES, VIDEO_H, VIDEO_W, 3)).astype(np.int16)
    frames = (frames + rng.integers(-3, 4, frames.shape)).clip(0, 255).astype(np.uint8)
    return write_mp4(folder / "ride.mp4", frames, fps=SOURCE_FPS)


def _sidecar_arrays(*, frames: int = NUM_FRAMES, grid=(VIDEO_W // 2, VIDEO_H // 2)) -> dict[str, np.ndarray]:
    """Frame i: near half z = 10 + i m (columns left of EDGE_X), far half twice that, a sparse
    random third of the pixels with a point; frame 3 invalid (no sweep)."""
    w, h = grid
    rng = np.random.default_rng(1)
    columns = (np.arange(w) + 0.5) * VIDEO_W / w
    near = (10.0 + np.arange(frames))[:, None, None]
    full = np.where(columns[None, None, :] < EDGE_X, near, 2 * near) * np.ones((1, h, 1))
    depth = np.where(rng.random(full.shape) < 0.35, full, 0.0)
    depth[:, 0, :] = full[:, 0, :]  # every column has a point in its top row: no sky
    valid = np.ones(frames, bool)
    valid[3], depth[3] = False, 0.0
    semantic = np.where(depth > 0, np.where(columns < EDGE_X, 13, 41), 255).astype(np.uint8)
    names = np.array(["unused"] * 13 + ["Car"] + ["x"] * 27 + ["Building"])
    return {
        "depth": depth.astype(np.float16),
        "valid_frames": valid,
        "semantic": semantic,
        "class_names": names,
    }


def _save(video: Path, arrays: dict) -> Path:
    path = video.parent / f"{video.stem}.depth.npz"
    np.savez_compressed(path, **arrays)
    return path


@pytest.mark.parametrize(("fps", "start_s"), [(7.0, 0.0), (13.0, 0.25), (10.0, 0.1)])
def test_the_mapping_names_the_source_frame_the_decoder_chose(tmp_path, fps, start_s):
    video = _video(tmp_path)
    frames = decode_video(video, DecodeConfig(fps=fps, resolution="16x16", start_s=start_s, val_fraction=0))
    decoded = np.round((frames.reshape(len(frames), -1).mean(axis=1) - 10) / 20).astype(int)
    mapped = source_frame_indices(
        len(frames), fps=fps, start_s=start_s, source_fps=SOURCE_FPS, num_source=NUM_FRAMES
    )
    assert len(set(decoded.tolist())) > 4
    np.testing.assert_array_equal(mapped, decoded)


def test_prepare_takes_the_sidecar_depth_cropped_like_the_frames_and_records_it(tmp_path):
    from safetensors.numpy import load_file

    from src.data.prepare import PrepareConfig, prepare_dataset

    video = _video(tmp_path)
    _save(video, _sidecar_arrays())
    out = tmp_path / "prepared"
    fps = 7.0
    manifest = prepare_dataset(
        PrepareConfig(videos=[str(video)], out=str(out), resolution="24x24", fps=fps, val_fraction=0.0)
    )
    record = manifest["videos"][0]
    assert record["depth_source"] == "lidar_sidecar"
    assert record["sidecar"]["invalid_frames_replaced"] == 1  # output frame at 3/10 s: source frame 3
    depth = np.concatenate(
        [load_file(str(out / "videos" / record["id"] / s["file"]))["depth"] for s in record["shards"]]
    )
    source = source_frame_indices(
        len(depth), fps=fps, start_s=0.0, source_fps=SOURCE_FPS, num_source=NUM_FRAMES
    )
    source = np.where(source == 3, 2, source)  # invalid: the nearest valid frame (the earlier on a tie)
    near = 1.0 / (10.0 + source)
    # the 48-px-high frame's centre crop is columns 8..56; EDGE_X = 40 lands on column (40 - 8) * 24 / 48 = 16
    np.testing.assert_allclose(depth[:, 4:-4, :14].mean(axis=(1, 2)), near, rtol=0.02)
    np.testing.assert_allclose(depth[:, 4:-4, 18:].mean(axis=(1, 2)), near / 2, rtol=0.02)


def test_a_video_without_a_sidecar_records_the_estimate(tmp_path):
    from src.data.prepare import PrepareConfig, prepare_dataset

    video = _video(tmp_path)
    manifest = prepare_dataset(
        PrepareConfig(videos=[str(video)], out=str(tmp_path / "p"), resolution="16x16")
    )
    assert manifest["videos"][0]["depth_source"] == "estimate"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda a: a | {"depth": a["depth"][:-1], "valid_frames": a["valid_frames"][:-1]},
            "11 frames but the video has 12",
        ),
        (lambda a: {k: v for k, v in a.items() if k != "valid_frames"}, "missing key.*valid_frames"),
        (lambda a: {k: v for k, v in a.items() if k != "class_names"}, "class_names"),
        (lambda a: _sidecar_arrays(grid=(32, 32)), "aspect"),
        (lambda a: a | {"depth": a["depth"][:, 0]}, "depth must be a float"),
        (lambda a: a | {"valid_frames": np.zeros(NUM_FRAMES, bool)}, "no frame is marked valid"),
    ],
)
def test_a_bad_sidecar_is_one_clear_error(tmp_path, change, message):
    video = _video(tmp_path)
    _save(video, change(_sidecar_arrays()))
    with pytest.raises(UserError, match=message) as caught:
        open_sidecar(video, num_source=NUM_FRAMES, source_fps=SOURCE_FPS, video_size=(VIDEO_W, VIDEO_H),
                     output_size=(16, 16), fps=10.0, start_s=0.0, num_output=NUM_FRAMES)  # fmt: skip
    line = caught.value.one_line()
    assert "\n" not in line and "ride.depth.npz" in line and "estimated depth" in line


def test_a_video_without_a_frame_rate_cannot_be_matched_to_its_sidecar(tmp_path):
    video = _video(tmp_path)
    _save(video, _sidecar_arrays())
    with pytest.raises(UserError, match="declares no frame rate"):
        open_sidecar(video, num_source=NUM_FRAMES, source_fps=0.0, video_size=(VIDEO_W, VIDEO_H),
                     output_size=(16, 16), fps=10.0, start_s=0.0, num_output=NUM_FRAMES)  # fmt: skip


def test_a_bad_sidecar_skips_its_video_with_that_line(tmp_path, capsys):
    from src.data.prepare import PrepareConfig, prepare_dataset

    video = _video(tmp_path)
    _save(video, {k: v for k, v in _sidecar_arrays().items() if k != "depth"})
    with pytest.raises(UserError, match="none of the 1 video"):
        prepare_dataset(PrepareConfig(videos=[str(video)], out=str(tmp_path / "p"), resolution="16x16"))
    assert "missing key(s) depth" in capsys.readouterr().err
    failure = next((tmp_path / "p" / "failures").glob("*.json"))
    assert "missing key(s) depth" in json.loads(failure.read_text())["error"]


def test_densify_fills_within_each_class_and_makes_the_top_sky():
    h, w = 40, 60
    rng = np.random.default_rng(0)
    rows = np.arange(h)[:, None] * np.ones((1, w))
    road = 1.0 / (0.002 * rows + 0.01)  # a ground plane: inverse depth linear in the row
    car = (np.abs(np.arange(w) - 30)[None, :] < 8) & (rows > 20)
    truth = np.where(car, 5.0, road)
    points = ((rng.random((h, w)) < 0.25) & (rows >= 10)) | (rows == 10)  # the top scan line, then sparse
    classes = np.where(car, 13, 7).astype(np.uint8)
    inverse, labels = densify(np.where(points, truth, 0.0), np.where(points, classes, 255))
    assert np.all(labels[:9] == SEMANTIC_CLASSES["sky"]) and np.allclose(inverse[:9], 1 / SKY_DEPTH_M)
    inside_car = car & (np.abs(np.arange(w) - 30)[None, :] < 6) & (rows > 22)
    np.testing.assert_allclose(inverse[inside_car], 1 / 5.0, rtol=1e-4)  # no road bled into the car
    road_rows = (~car) & (rows > 15) & (rows < 38) & (np.abs(np.arange(w) - 30)[None, :] > 11)
    error = np.abs(inverse[road_rows] * truth[road_rows] - 1)  # a quarter of the pixels sampled at random
    assert np.median(error) < 0.02 and np.percentile(error, 95) < 0.06, np.percentile(error, [50, 95])


def test_pandaset_classes_map_onto_the_games_ids():
    names = ["unused", "Vegetation", "Road", "Car", "Pickup Truck", "Building", "Pedestrian", "Signs", "road"]
    table = game_class_table(names)
    assert table[[1, 2, 3, 4, 5, 7, 8]].tolist() == [
        SEMANTIC_CLASSES[c] for c in ("tree", "road", "vehicle", "vehicle", "building", "pole", "road")
    ]
    assert table[6] == 255 and table[0] == 255


def test_stored_inverse_metres_encode_as_the_games_metric_depth():
    from src.conditions.encode import ConditionStats, encode
    from src.conditions.spec import ConditionSpec

    rng = np.random.default_rng(0)
    depth_m = rng.uniform(2.0, 190.0, (2, 16, 16)).astype(np.float32)
    stored = (1.0 / depth_m).astype(np.float16)  # what a shard holds
    channels = {"albedo": np.zeros((2, 16, 16, 3), np.uint8), "flow": np.zeros((2, 16, 16, 2), np.float32)}
    spec, stats = ConditionSpec(), ConditionStats()
    game = encode(channels | {"depth": depth_m}, spec=spec, stats=stats, depth_kind="metric")
    real = encode(
        channels | {"depth": stored.astype(np.float32)}, spec=spec, stats=stats, depth_kind="inverse_relative"
    )
    depth, normals = spec.slices()["depth"], spec.slices()["normals"]
    assert (game[:, :3] == real[:, :3]).all() and (game[:, depth] - real[:, depth]).abs().max() < 1e-3
    # normals of random (rough) depth amplify float16's rounding; still the same to 1e-2
    assert (game[:, normals] - real[:, normals]).abs().max() < 1e-2


def test_normals_take_one_field_of_view_per_batch_item():
    import torch

    from src.conditions.normals import normals_from_depth

    depth = torch.rand(2, 3, 12, 16) + 1.0
    both = normals_from_depth(depth, fov_y_deg=torch.tensor([30.0, 70.0]), channel_dim=-3)
    for item, fov in enumerate((30.0, 70.0)):
        assert torch.allclose(
            both[item], normals_from_depth(depth[item], fov_y_deg=fov, channel_dim=-3), atol=1e-6
        )
    assert not torch.allclose(both[0], both[1], atol=1e-2)


def test_clips_of_a_sidecar_video_get_their_cameras_normals(tmp_path):
    import torch

    from src.conditions.encode import ConditionStats, encode
    from src.data.loader import ClipDataset
    from src.data.prepare import PrepareConfig, prepare_dataset

    video = _video(tmp_path)
    arrays = _sidecar_arrays()
    focal = 30.0  # on the 32x24 grid: the 24-row frame spans 2 atan(12 / 30) = 43.6 degrees
    arrays["K_map"] = np.array([[focal, 0, 16], [0, focal, 12], [0, 0, 1]])
    _save(video, arrays)
    out = tmp_path / "prepared"
    manifest = prepare_dataset(
        PrepareConfig(videos=[str(video)], out=str(out), resolution="16x16", val_fraction=0)
    )
    fov = manifest["videos"][0]["sidecar"]["camera_fov_y_deg"]
    assert abs(fov - np.degrees(2 * np.arctan(12 / focal))) < 1e-2
    clips = ClipDataset(out, split="train", clip_frames=4, crop=16, seed=0, augment=None)
    raw = clips.raw_batch_at(0, 2)
    assert raw["fov_y_deg"] == [fov, fov]
    batch = clips.finish_batch(raw)
    channels = {k: raw[k] for k in ("albedo", "depth", "flow")}
    stats = ConditionStats.from_dict(manifest["stats"])
    own = encode(channels, spec=clips.spec, stats=stats, depth_kind="inverse_relative", fov_y_deg=fov)
    assumed = encode(channels, spec=clips.spec, stats=stats, depth_kind="inverse_relative")
    assert torch.allclose(batch["cond"], own, atol=1e-5) and not torch.allclose(
        batch["cond"], assumed, atol=1e-3
    )


def test_the_ground_plane_continues_below_the_lowest_points():
    h, w = 40, 60
    rng = np.random.default_rng(0)
    rows = np.arange(h)[:, None] * np.ones((1, w))
    road = 1.0 / (0.002 * rows + 0.01)
    points = ((rng.random((h, w)) < 0.3) & (rows >= 10) & (rows <= 30)) | (rows == 10)
    sparse = np.where(points, road, 0.0)
    classes = np.where(points, 7, 255).astype(np.uint8)
    streak, _ = densify(sparse, classes)
    inverse, labels = densify(sparse, classes, ground_ids=[7])
    below = rows > 32
    np.testing.assert_allclose(inverse[below], 1 / road[below], rtol=0.01)  # the plane, row by row
    assert np.all(labels[below] == 7)
    assert np.abs(streak[below] * road[below] - 1).max() > 0.1  # the nearest point alone repeats row ~30
