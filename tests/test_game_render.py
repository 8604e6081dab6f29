"""The G-buffer renderer against analytic geometry (headless EGL on llvmpipe)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from src.common.gbuffer import SEMANTIC_CLASSES, SKY_DEPTH_M
from src.common.gbuffer_io import load_gbuffer_clip, save_gbuffer_clip
from src.game.camera import CameraPose, project_points, unproject_pixels
from src.game.city import StreetGeometry
from src.game.config import CameraConfig, PlayConfig, WorldConfig
from src.game.meshes import SceneBuilder, box_models, build_scene
from src.game.raster import GBufferRaster
from src.game.session import GameSession, load_level
from src.game.world import World

WIDTH, HEIGHT = 160, 120
CAMERA = CameraConfig(fov_y_deg=60.0, show_handlebar=False)


@pytest.fixture(scope="module")
def renderer():
    renderer = GBufferRaster(WIDTH, HEIGHT, CAMERA)
    yield renderer
    renderer.release()


def _ground_scene(extra=None):
    builder = SceneBuilder()
    builder.add_boxes([(0, 0, 0)], [(4000, 1, 4000)], (0.3, 0.3, 0.3), "road", mesh="quad")
    if extra:
        extra(builder)
    return builder.build()


def _pixel_grid(step: int = 1) -> np.ndarray:
    ys, xs = np.mgrid[0:HEIGHT:step, 0:WIDTH:step]
    return np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], -1), ys.ravel(), xs.ravel()


def _static_world(config: WorldConfig | None = None) -> World:
    """The street without traffic (``config``: the default street's)."""
    world = World(dataclasses.replace(config or WorldConfig(), spawn_rate_per_s=0.0), seed=5)
    world.vehicles.clear()
    return world


def test_ground_depth_equals_the_ray_plane_distance(renderer):
    pose = CameraPose((1.0, 1.6, -20.0), yaw_rad=0.3, pitch_rad=math.radians(-12), roll_rad=0.08)
    gbuffer = renderer.render(_ground_scene(), pose.view_matrix())
    pixels, rows, cols = _pixel_grid(4)
    intr = renderer.intrinsics
    rotation = pose.camera_to_world()[:3, :3]
    ray_view = np.stack(
        [(pixels[:, 0] - intr.cx) / intr.fx, -(pixels[:, 1] - intr.cy) / intr.fy, -np.ones(len(pixels))], -1
    )  # axis depth 1
    ray_world = ray_view @ rotation.T
    hits = ray_world[:, 1] < -1e-3
    expected = -pose.position[1] / ray_world[hits, 1]  # the axis depth where the ray meets y = 0
    near = expected < 300
    rendered = gbuffer.depth[rows[hits], cols[hits]]
    assert hits.sum() > 200
    np.testing.assert_allclose(rendered[near], expected[near], rtol=0.01)
    assert np.all(gbuffer.depth[rows[~hits], cols[~hits]] == SKY_DEPTH_M)
    assert np.all(gbuffer.semantic[rows[hits][near], cols[hits][near]] == SEMANTIC_CLASSES["road"])


def test_static_flow_equals_reprojection_with_both_cameras(renderer):
    world = _static_world()
    prev = CameraPose((2.0, 1.62, -30.0), yaw_rad=0.02, pitch_rad=-0.07, roll_rad=0.01)
    now = CameraPose((2.15, 1.58, -30.6), yaw_rad=-0.01, pitch_rad=-0.06, roll_rad=-0.02)
    gbuffer = renderer.render(
        build_scene(world, now, prev, show_handlebar=False), now.view_matrix(), prev.view_matrix()
    )
    pixels, rows, cols = _pixel_grid()
    depth = gbuffer.depth[rows, cols]
    solid = depth < 250
    points = unproject_pixels(pixels[solid], depth[solid], now.view_matrix(), renderer.intrinsics)
    prev_pixels, _ = project_points(points, prev.view_matrix(), renderer.intrinsics)
    expected = pixels[solid] - prev_pixels  # x_t - x_{t-1}
    rendered = gbuffer.flow[rows[solid], cols[solid]]
    assert solid.sum() > 0.5 * len(pixels)
    assert np.abs(expected).max() > 3.0  # the camera really moved
    np.testing.assert_allclose(rendered, expected, atol=0.1)
    # the sky is at infinity: only the rotation moves it
    sky = gbuffer.semantic[rows, cols] == SEMANTIC_CLASSES["sky"]
    assert sky.sum() > 50
    far_points = unproject_pixels(
        pixels[sky], np.full(sky.sum(), 1e7), now.view_matrix(), renderer.intrinsics
    )
    far_prev, _ = project_points(far_points, prev.view_matrix(), renderer.intrinsics)
    np.testing.assert_allclose(gbuffer.flow[rows[sky], cols[sky]], pixels[sky] - far_prev, atol=0.1)


def test_a_moving_car_has_its_own_flow_with_the_x_t_minus_x_t_1_sign(renderer):
    pose = CameraPose((0.0, 1.6, 0.0), pitch_rad=-0.1)
    car_now, displacement = np.array([0.5, 0.75, -12.0]), np.array([0.4, 0.0, -0.3])  # moved right and away
    size = np.array([1.8, 1.5, 4.4])

    def add_car(builder):
        builder.add_boxes(
            [car_now], [size], (0.8, 0.1, 0.1), "vehicle", prev_centres=[car_now - displacement]
        )

    gbuffer = renderer.render(_ground_scene(add_car), pose.view_matrix(), pose.view_matrix())
    car = gbuffer.semantic == SEMANTIC_CLASSES["vehicle"]
    background = ~car
    assert car.sum() > 100
    assert np.abs(gbuffer.flow[background]).max() < 1e-3  # static camera, static city
    rows, cols = np.nonzero(car)
    pixels = np.stack([cols + 0.5, rows + 0.5], -1)
    points = unproject_pixels(pixels, gbuffer.depth[rows, cols], pose.view_matrix(), renderer.intrinsics)
    prev_pixels, _ = project_points(points - displacement, pose.view_matrix(), renderer.intrinsics)
    np.testing.assert_allclose(gbuffer.flow[rows, cols], pixels - prev_pixels, atol=0.1)
    assert np.all(gbuffer.flow[rows, cols, 0] > 0)  # it moved right, so x_t - x_{t-1} > 0


def test_ground_normals_point_up_and_semantics_sit_where_the_camera_says(renderer):
    world = _static_world(load_level("game/levels/boulevard.yaml"))  # facades above its trees
    pose = CameraPose((3.0, 1.6, -50.0), pitch_rad=math.radians(-4))
    gbuffer = renderer.render(build_scene(world, pose, pose, show_handlebar=False), pose.view_matrix())
    rotation = pose.camera_to_world()[:3, :3]
    road = gbuffer.semantic == SEMANTIC_CLASSES["road"]
    assert road.sum() > 500
    normals_world = gbuffer.normals[road] @ rotation.T
    np.testing.assert_allclose(normals_world, np.tile([0, 1, 0], (road.sum(), 1)), atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(gbuffer.normals, axis=-1), 1.0, atol=1e-3)
    assert gbuffer.semantic[0, WIDTH // 2] == SEMANTIC_CLASSES["sky"]  # straight up the street
    assert gbuffer.semantic[HEIGHT - 1, WIDTH // 2] == SEMANTIC_CLASSES["road"]  # at the wheel
    checked = 0
    for building in world.buildings:  # a facade point above the trees, projected by the camera
        s_mid = building.s_start_m + building.width_m / 2
        if building.height_m < 16 or not 60 < s_mid < 110:
            continue
        x_face = building.side * (StreetGeometry.of(world.config).facade_x_m + building.setback_m)
        pixel, depth = project_points(
            np.array([[x_face, 12.0, -s_mid]]), pose.view_matrix(), renderer.intrinsics
        )
        col, row = int(pixel[0, 0]), int(pixel[0, 1])
        if (
            0 <= col < WIDTH
            and 0 <= row < HEIGHT
            and abs(gbuffer.depth[row, col] - depth[0]) < 0.05 * depth[0]
        ):
            assert gbuffer.semantic[row, col] == SEMANTIC_CLASSES["building"]
            checked += 1
    assert checked >= 1


def test_same_seed_and_actions_give_identical_frames():
    frames = []
    for _ in range(2):
        session = GameSession(PlayConfig(resolution="96x64", seed=4, autopilot=True))
        frames.append([session.frame(None)[0] for _ in range(6)])
        session.release()
    for a, b in zip(*frames):
        for name, value in a.arrays().items():
            np.testing.assert_array_equal(value, b.arrays()[name], err_msg=name)
    assert np.abs(frames[0][-1].flow).max() > 0
    assert np.abs(frames[0][0].flow).max() < 0.01  # the first frame of a run has no motion


def test_a_second_session_beside_the_first_does_not_change_its_frames():
    """Training renders game clips with one session while validation rides another (each with its
    own OpenGL context). The first session's frames must not change when the second has been
    created, used and released in between (before the fix its flow read ~1e12 and its colours
    another scene's)."""

    def ride(session, frames):
        return [session.frame(None)[0] for _ in range(frames)]

    solo = GameSession(PlayConfig(headless=True, autopilot=True, seed=1, resolution="64x48"))
    reference = ride(solo, 3)
    solo.release()
    first = GameSession(PlayConfig(headless=True, autopilot=True, seed=1, resolution="64x48"))
    frames = ride(first, 1)
    other = GameSession(PlayConfig(headless=True, autopilot=True, seed=2, resolution="96x64"))
    ride(other, 2)
    other.release()
    frames += ride(first, 2)
    first.release()
    for expected, got in zip(reference, frames):
        for name in ("color", "albedo", "depth", "flow", "normals", "semantic"):
            assert np.array_equal(getattr(expected, name), getattr(got, name)), name


def test_gbuffer_arrays_have_the_documented_dtypes_and_round_trip_through_a_clip(tmp_path):
    session = GameSession(PlayConfig(resolution="64x48", seed=1))
    frames, views = [], []
    for _ in range(3):
        gbuffer, info, _ = session.frame(None)
        frames.append(gbuffer)
        views.append(info.view_matrix)
    meta = session.clip_meta()
    session.release()
    g = frames[0]
    assert (g.color.dtype, g.albedo.dtype, g.semantic.dtype) == (np.uint8,) * 3
    assert (g.depth.dtype, g.flow.dtype, g.normals.dtype) == (np.float32,) * 3
    save_gbuffer_clip(tmp_path / "clip", frames, meta, views=views, frames_per_shard=2)
    arrays, loaded = load_gbuffer_clip(tmp_path / "clip")
    assert loaded["num_frames"] == 3 and loaded["resolution"] == [64, 48] and len(loaded["shards"]) == 2
    assert loaded["depth_kind"] == "metric" and loaded["fov_y_deg"] == CameraConfig().fov_y_deg
    for name in ("color", "depth", "flow", "normals", "albedo", "semantic"):
        np.testing.assert_array_equal(arrays[name], np.stack([getattr(f, name) for f in frames]))
    np.testing.assert_array_equal(arrays["view"], np.stack(views))


def test_box_models_place_unit_meshes():
    model = box_models([(1, 2, 3)], [(4, 5, 6)])[0]
    np.testing.assert_allclose(model @ [0.5, 0.5, 0.5, 1], [3, 4.5, 6, 1])


def test_visualisers_return_rgb_uint8_and_the_benchmark_reports_every_resolution():
    from src.bench.bench_game import format_table, run_bench_game
    from src.bench.config import BenchGameConfig
    from src.game.visualize import colorize_depth, colorize_flow, colorize_normals, colorize_semantic

    flow = np.zeros((8, 10, 2), np.float32)
    flow[:, :5, 0] = 3.0  # right
    flow[:, 5:, 0] = -3.0  # left
    images = [
        colorize_depth(np.full((8, 10), 20.0, np.float32)),
        colorize_flow(flow),
        colorize_normals(np.zeros((8, 10, 3), np.float32)),
        colorize_semantic(np.zeros((8, 10), np.uint8)),
    ]
    for image in images:
        assert image.shape == (8, 10, 3) and image.dtype == np.uint8
    assert not np.array_equal(images[1][0, 0], images[1][0, 9])  # opposite motions, different hues
    assert np.all(colorize_depth(np.full((2, 2), SKY_DEPTH_M, np.float32)) == 0)
    result = run_bench_game(
        BenchGameConfig(resolutions=["32x32", "48x32"], frames=3, warmup_frames=1, json_out="")
    )
    assert [row["resolution"] for row in result["results"]] == ["32x32", "48x32"]
    assert all(row["render_readback_ms_median"] > 0 for row in result["results"])
    assert "48x32" in format_table(result)
