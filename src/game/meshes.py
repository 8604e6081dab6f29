"""The per-frame scene: which mesh is drawn where, how it moved, what it is (numpy only).

``build_scene`` puts together the street around the rider: the road with worn, dashed
markings and varied asphalt (long quads that follow the camera; their patterns are anchored to
the world), the buildings with their facades, the city blocks' static things (prebuilt once per
block, ``src/game/blocks.py``), the traffic and the handlebar. Meshes, instance batches and the
``SceneBuilder`` live in ``src/game/instances.py``.
"""

from __future__ import annotations

import math

import numpy as np

from src.game.blocks import build_block
from src.game.camera import CameraPose
from src.game.city import MATERIALS, StreetGeometry, facade_models
from src.game.instances import MESHES, PATTERNS, InstanceBatch, Scene, SceneBuilder, box_models
from src.game.palette import city_palette
from src.game.world import World

__all__ = ["MESHES", "InstanceBatch", "Scene", "SceneBuilder", "box_models", "build_scene"]

BIKE_ALBEDO = (0.1, 0.1, 0.12)
WINDOW_RECESS_M = 0.3  # the glass sits this far behind the wall


def build_scene(
    world: World, camera: CameraPose, prev_camera: CameraPose, *, show_handlebar: bool = True
) -> Scene:
    """Everything visible around the rider now, with per-instance previous model matrices."""
    c = world.config
    builder = SceneBuilder()
    s_cam = -camera.position[2]
    s_lo, s_hi = s_cam - c.keep_behind_m, s_cam + c.view_distance_m
    _add_road(builder, world, s_lo, s_hi)
    for k in range(math.floor(s_lo / c.block_length_m - 1.5), math.floor(s_hi / c.block_length_m) + 1):
        if k not in world.city_blocks:
            world.city_blocks[k] = build_block(k, c, world.seed)
        builder.add_scene(world.city_blocks[k])
    for k in [k for k in world.city_blocks if k < math.floor(s_lo / c.block_length_m - 1.5)]:
        del world.city_blocks[k]
    if world.buildings:
        _add_buildings(builder, world)
    for vehicle in world.vehicles:
        _add_vehicle(builder, vehicle)
    if show_handlebar:
        parts = [((0.0, -0.45, -0.72), (0.62, 0.035, 0.035)), ((0.0, -0.56, -0.7), (0.045, 0.22, 0.045))]
        for centre, size in parts:
            local = box_models([centre], [size])[0]
            builder.add(
                "box",
                camera.camera_to_world() @ local,
                BIKE_ALBEDO,
                "bicycle",
                prev_camera.camera_to_world() @ local,
            )
    return builder.build()


def _add_road(builder: SceneBuilder, world: World, s_lo: float, s_hi: float) -> None:
    """Asphalt between the kerbs and the lines on it: long quads, patterns fixed to the world."""
    c, pal = world.config, city_palette()
    street = StreetGeometry.of(c)
    length, z_mid = s_hi - s_lo, -(s_lo + s_hi) / 2
    builder.add_boxes(
        [(0, 0, z_mid)],
        [(2 * street.kerb_x_m, 1, length)],
        pal.colours("road")[0],
        "road",
        mesh="quad",
        pattern=(PATTERNS["asphalt"], 0.0, z_mid, 0.0),
    )
    white = pal.brightest("lane_marking")
    continuous = (PATTERNS["marking"], 0.0, 1.0, z_mid)
    dashed = (
        PATTERNS["marking"],
        c.lane_marking_length_m,
        c.lane_marking_length_m + c.lane_marking_gap_m,
        z_mid,
    )
    lines = [(-0.15, white, continuous), (0.15, white, continuous)]
    lines += [(side * street.traffic_half_m, white, continuous) for side in (-1, 1)]
    lines += [
        (sign * k * c.lane_width_m, white, dashed)
        for k in range(1, c.lanes_per_direction)
        for sign in (-1, 1)
    ]
    for index, (x, albedo, pattern) in enumerate(lines):
        builder.add_boxes(
            [(x, 0.02, z_mid)],
            [(c.lane_marking_width_m, 1, length)],
            albedo,
            "lane_marking",
            mesh="quad",
            pattern=pattern,
            seed=index * 3.7,
        )


def _add_buildings(builder: SceneBuilder, world: World) -> None:
    """Per building: a wall shell cut by its window grid, the glass recessed behind it, a cornice."""
    b = world.buildings
    boxes = facade_models(b, StreetGeometry.of(world.config))
    centre, size = boxes["centre"], boxes["size"]
    n = len(b)
    colour = np.array([x.colour for x in b], np.float32)
    material = np.array([x.material for x in b], np.float32)
    seed = np.array([x.s_start_m for x in b], np.float32) % 997.0
    pattern = np.stack(
        [
            np.full(n, PATTERNS["facade"], np.float32),
            np.array([x.floor_height_m for x in b], np.float32),
            np.array([x.window_spacing_m for x in b], np.float32),
            material,
        ],
        -1,
    )
    builder.add_boxes(centre, size, colour, "building", pattern=pattern, seed=seed)
    inner = size - np.array([2 * WINDOW_RECESS_M, WINDOW_RECESS_M, 2 * WINDOW_RECESS_M])
    builder.add_boxes(
        centre - np.array([0, WINDOW_RECESS_M / 2, 0]),
        inner,
        np.array([x.glass_colour for x in b], np.float32),
        "building",
        pattern=(PATTERNS["glass"], 0.0, 0.0, 0.0),
        seed=seed,
    )
    cornice = material != MATERIALS.index("glass")
    cornice_size = size[cornice] + np.array([0.6, 0.0, 0.6])
    cornice_size[:, 1] = 0.5
    cornice_centre = centre[cornice].copy()
    cornice_centre[:, 1] = size[cornice, 1] - 0.25
    builder.add_boxes(cornice_centre, cornice_size, colour[cornice] * 0.82, "building")


def _add_vehicle(builder: SceneBuilder, vehicle) -> None:
    length, width, height = vehicle.length_m, vehicle.width_m, vehicle.height_m
    d = vehicle.direction  # the vehicle's front points to -z * d

    def at(x_m: float, s_m: float, dx: float, y: float, ds: float) -> tuple:
        return (x_m + dx, y, -(s_m + d * ds))

    def add(dx, y, ds, size, albedo):
        builder.add_boxes(
            [at(vehicle.x_m, vehicle.s_m, dx, y, ds)],
            [size],
            albedo,
            "vehicle",
            prev_centres=[at(vehicle.prev_x_m, vehicle.prev_s_m, dx, y, ds)],
        )

    colour, pal = vehicle.colour, city_palette()
    glass, tyre = pal.darkest("building"), pal.darkest("vehicle")
    add(0, 0.3, 0, (width - 0.15, 0.45, length - 0.5), tyre)  # wheels and underbody
    if vehicle.kind == "bus":
        add(0, 0.35 + (height - 0.35) / 2, 0, (width, height - 0.35, length), colour)
        add(0, height - 1.05, 0.3, (width + 0.04, 0.9, length - 1.4), glass)
        return
    body_h = height * 0.5
    add(0, 0.3 + body_h / 2, 0, (width, body_h, length), colour)
    cabin_h = height - 0.3 - body_h
    add(0, 0.3 + body_h + cabin_h / 2, -0.25, (width * 0.88, cabin_h, length * 0.5), glass)
    if vehicle.kind == "taxi":
        add(0, height + 0.1, -0.25, (0.6, 0.2, 0.25), (0.98, 0.95, 0.6))
