"""The city street (src/game/city.py, blocks.py, palette.py) against analytic geometry, in every
G-buffer channel (headless EGL on llvmpipe)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from src.common.gbuffer import SEMANTIC_CLASSES
from src.game.blocks import build_block
from src.game.camera import CameraPose, project_points, unproject_pixels
from src.game.city import MATERIALS, StreetGeometry, cross_street_span, parked_car_positions
from src.game.config import CameraConfig, WorldConfig
from src.game.meshes import WINDOW_RECESS_M, build_scene
from src.game.palette import city_palette
from src.game.raster import SUN_DIRECTION_WORLD, GBufferRaster
from src.game.session import load_level
from src.game.visualize import SEMANTIC_PALETTE
from src.game.world import World

WIDTH, HEIGHT = 160, 120
CAMERA = CameraConfig(fov_y_deg=60.0, show_handlebar=False)
LOOK_RIGHT = -math.pi / 2  # yaw > 0 turns left; the camera looks along -z at yaw 0
NEW_CLASSES = {"traffic_light": 10, "sign": 11, "wire": 12, "planter": 13}


@pytest.fixture(scope="module")
def renderer():
    renderer = GBufferRaster(WIDTH, HEIGHT, CAMERA)
    yield renderer
    renderer.release()


def _static_world(seed: int = 5, config: WorldConfig | None = None) -> World:
    """The street without traffic (``config``: the default street's)."""
    config = dataclasses.replace(config or WorldConfig(), spawn_rate_per_s=0.0, initial_vehicles=0)
    world = World(config, seed=seed)
    world.vehicles.clear()
    return world


def _render(renderer, world, pose, prev=None):
    prev = prev or pose
    scene = build_scene(world, pose, prev, show_handlebar=False)
    return renderer.render(scene, pose.view_matrix(), prev.view_matrix())


def _parked_car_bodies(world: World, k: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres and sizes (n 3 each) of the body boxes of block ``k``'s parked cars on ``side``."""
    _, props = build_block(k, world.config, world.seed)
    boxes = props["box"]
    body = (boxes.semantic == SEMANTIC_CLASSES["vehicle"]) & np.isclose(boxes.size_seed[:, 1], 1.45 * 0.5)
    centres = boxes.model[body, :3, 3]
    on_side = np.sign(centres[:, 0]) == side
    return centres[on_side], boxes.size_seed[body][on_side, :3].astype(float)


def test_new_semantic_classes_are_listed_with_the_old_ids_unchanged():
    old = [
        "sky",
        "road",
        "lane_marking",
        "sidewalk",
        "curb",
        "building",
        "vehicle",
        "pole",
        "tree",
        "bicycle",
    ]
    assert [SEMANTIC_CLASSES[name] for name in old] == list(range(10))
    assert {name: SEMANTIC_CLASSES[name] for name in NEW_CLASSES} == NEW_CLASSES
    for class_id in SEMANTIC_CLASSES.values():
        assert SEMANTIC_PALETTE[class_id].any()  # every class has a colour in the viewer
    assert len({tuple(SEMANTIC_PALETTE[i]) for i in SEMANTIC_CLASSES.values()}) == len(SEMANTIC_CLASSES)


def test_a_parked_cars_depth_is_the_camera_distance_of_its_box(renderer):
    world = _static_world()
    centres, sizes = _parked_car_bodies(world, 0, side=1)
    assert len(centres) >= 3
    centre, size = centres[1], sizes[1]
    face_x = centre[0] - size[0] / 2  # the side facing the road
    distance = 4.0
    pose = CameraPose((face_x - distance, centre[1], centre[2]), yaw_rad=LOOK_RIGHT)
    gbuffer = _render(renderer, world, pose)
    pixel, depth = project_points(centre[None] - [size[0] / 2, 0, 0], pose.view_matrix(), renderer.intrinsics)
    assert depth[0] == pytest.approx(distance)
    col, row = int(pixel[0, 0]), int(pixel[0, 1])
    window = np.s_[row - 3 : row + 3, col - 3 : col + 3]
    np.testing.assert_allclose(gbuffer.depth[window], distance, rtol=1e-4)
    assert np.all(gbuffer.semantic[window] == SEMANTIC_CLASSES["vehicle"])
    normal_world = gbuffer.normals[window].reshape(-1, 3) @ pose.camera_to_world()[:3, :3].T
    np.testing.assert_allclose(normal_world, np.tile([-1, 0, 0], (36, 1)), atol=1e-3)  # the face's normal
    np.testing.assert_allclose(gbuffer.flow[window], 0.0, atol=1e-3)  # parked, and the camera still


def test_parked_cars_line_both_kerbs_with_gaps():
    world = _static_world()
    street = StreetGeometry.of(world.config)
    for side in (-1, 1):
        centres, sizes = _parked_car_bodies(world, 1, side)
        assert len(centres) >= 5
        outer = np.abs(centres[:, 0]) + sizes[:, 0] / 2
        inner = np.abs(centres[:, 0]) - sizes[:, 0] / 2
        assert np.all(inner > street.traffic_half_m) and np.all(outer < street.kerb_x_m)  # the parking lane
    gaps = np.concatenate(
        [np.diff(parked_car_positions(np.random.default_rng(i), 0.0, 200.0)) - 4.4 for i in range(5)]
    )
    assert gaps.min() >= 0.6 and (gaps > 5.0).any()  # never touching; now and then a long gap


def test_window_grids_are_recessed_and_stay_inside_their_facade(renderer):
    world = _static_world(config=load_level("game/levels/boulevard.yaml"))  # its towers
    street = StreetGeometry.of(world.config)
    building = next(
        b
        for b in world.buildings
        if b.side == 1
        and b.height_m > 18
        and b.width_m > 14
        and 20 < b.s_start_m < 200
        and b.material != MATERIALS.index("glass")
    )
    face_x = street.facade_x_m + building.setback_m
    s_mid = building.s_start_m + building.width_m / 2
    pose = CameraPose((face_x - 16.0, 9.0, -s_mid), yaw_rad=LOOK_RIGHT)
    gbuffer = _render(renderer, world, pose)
    rows, cols = np.nonzero(gbuffer.semantic == SEMANTIC_CLASSES["building"])
    pixels = np.stack([cols + 0.5, rows + 0.5], -1)
    points = unproject_pixels(pixels, gbuffer.depth[rows, cols], pose.view_matrix(), renderer.intrinsics)
    s, y = -points[:, 2], points[:, 1]
    inside = (abs(s - s_mid) < building.width_m / 2 - 0.4) & (y > 0.2) & (y < building.height_m - 1.2)
    on_wall = np.abs(points[:, 0] - face_x) < 0.01
    on_glass = np.abs(points[:, 0] - (face_x + WINDOW_RECESS_M)) < 0.01
    assert np.all((on_wall | on_glass)[inside])  # the facade is its wall and its recessed glass
    assert on_glass[inside].sum() > 200 and on_wall[inside].sum() > 200
    glass = on_glass & (abs(s - s_mid) < building.width_m / 2 + 0.5)
    assert np.all(y[glass] > 0.0) and np.all(y[glass] < building.height_m - 1.0)  # under the parapet
    assert np.all(abs(s[glass] - s_mid) < building.width_m / 2)  # inside the facade's width
    floors = np.unique(np.floor(y[glass & (y > 1.25 * building.floor_height_m)] / building.floor_height_m))
    assert len(floors) >= 3  # a grid: windows on several floors
    normal_world = gbuffer.normals[rows, cols][inside] @ pose.camera_to_world()[:3, :3].T
    np.testing.assert_allclose(normal_world[:, 0], -1.0, atol=1e-3)


def test_static_things_move_with_the_camera_alone_and_every_new_class_is_written():
    renderer = GBufferRaster(320, 240, CAMERA)
    world = _static_world()
    start, _ = cross_street_span(0, world.config)
    prev = CameraPose((3.0, 1.6, -(start - 30.0)), yaw_rad=0.02, pitch_rad=0.05)
    now = CameraPose((3.1, 1.62, -(start - 29.4)), yaw_rad=0.0, pitch_rad=0.06, roll_rad=0.01)
    gbuffer = _render(renderer, world, now, prev)
    for name in ("traffic_light", "sign", "wire", "planter", "vehicle", "pole", "tree", "building"):
        assert (gbuffer.semantic == SEMANTIC_CLASSES[name]).sum() >= 3, name
    rows, cols = np.nonzero(gbuffer.depth < 250)
    pixels = np.stack([cols + 0.5, rows + 0.5], -1)
    points = unproject_pixels(pixels, gbuffer.depth[rows, cols], now.view_matrix(), renderer.intrinsics)
    prev_pixels, _ = project_points(points, prev.view_matrix(), renderer.intrinsics)
    np.testing.assert_allclose(gbuffer.flow[rows, cols], pixels - prev_pixels, atol=0.1)
    assert np.abs(pixels - prev_pixels).max() > 3.0  # the camera really moved
    renderer.release()


def test_one_seed_gives_the_same_street_twice_and_another_seed_another(renderer):
    pose = CameraPose((2.0, 1.6, -40.0), pitch_rad=-0.05)
    scenes = [build_scene(_static_world(seed), pose, pose, show_handlebar=False) for seed in (3, 3, 4)]
    for name, batch in scenes[0].items():
        for field in ("model", "albedo", "semantic", "pattern", "size_seed"):
            np.testing.assert_array_equal(getattr(batch, field), getattr(scenes[1][name], field))
    assert not np.array_equal(scenes[0]["box"].model[:50], scenes[2]["box"].model[:50])
    config = WorldConfig()
    later_first = [build_block(k, config, 3) for k in (4, 2)][1]  # blocks do not depend on the order built
    for name, batch in build_block(2, config, 3)[1].items():
        np.testing.assert_array_equal(batch.model, later_first[1][name].model)
    frames = [_render(renderer, _static_world(3), pose) for _ in range(2)]
    for a, b in zip(*(f.arrays().values() for f in frames)):
        np.testing.assert_array_equal(a, b)


def test_colours_come_from_the_measured_palette_and_the_sun_shines_from_where_faces_are_lit(renderer):
    world = _static_world()
    pose = CameraPose((2.0, 1.6, -40.0), pitch_rad=-0.05)
    gbuffer = _render(renderer, world, pose)
    pal = city_palette()
    road = gbuffer.albedo[gbuffer.semantic == SEMANTIC_CLASSES["road"]].astype(float)
    measured = np.round(pal.colours("road") * 255)
    distance = np.abs(road[:, None, :] - measured[None]).max(-1).min(-1)
    assert len(road) > 1000 and distance.max() <= 1.0  # every asphalt pixel is a measured colour
    assert len(np.unique(road, axis=0)) >= 2  # and the asphalt varies
    sky = gbuffer.albedo[gbuffer.semantic == SEMANTIC_CLASSES["sky"]].astype(float)
    cloud, clear = np.round(pal.colours("sky")[:2] * 255)
    low, high = np.minimum(cloud, clear) - 1, np.maximum(cloud, clear) + 1
    assert np.all((sky >= low) & (sky <= high))  # clouds mixed into the measured sky
    near_cloud = np.abs(sky - cloud).max(-1) <= 2
    assert 0.05 < near_cloud.mean() < 0.98
    # look straight at the sun: the brightest sky pixel is where the sun direction projects
    yaw = math.atan2(-SUN_DIRECTION_WORLD[0], -SUN_DIRECTION_WORLD[2])
    pitch = math.asin(SUN_DIRECTION_WORLD[1])
    sun_pose = CameraPose((0.0, 500.0, 0.0), yaw_rad=yaw, pitch_rad=pitch)
    sky_view = renderer.render(build_scene(world, pose, pose, show_handlebar=False), sun_pose.view_matrix())
    rows, cols = np.nonzero(sky_view.color.astype(int).sum(-1) >= 3 * 254)  # the sun's disc
    assert 0 < len(rows) < 0.05 * WIDTH * HEIGHT
    assert abs(rows.mean() + 0.5 - renderer.intrinsics.cy) <= 2.0
    assert abs(cols.mean() + 0.5 - renderer.intrinsics.cx) <= 2.0
    lit_from = np.array(renderer.geometry_program["u_sun_view"].value)  # the faces' diffuse light
    np.testing.assert_allclose(lit_from, sun_pose.view_matrix()[:3, :3] @ SUN_DIRECTION_WORLD, atol=1e-6)
    away = CameraPose((0.0, 500.0, 0.0), yaw_rad=yaw + math.pi / 2, pitch_rad=pitch)
    assert (renderer.render({}, away.view_matrix()).color.astype(int).sum(-1) >= 3 * 254).sum() == 0
