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

__all__ = ["MESHES", "PATTERNS", "InstanceBatch", "Scene", "SceneBuilder", "box_models", "build_scene"]

BIKE_ALBEDO = (0.1, 0.1, 0.12)
TAXI_SIGN_ALBEDO = (0.98, 0.95, 0.6)
WINDOW_RECESS_M = 0.3  # the glass sits this far behind the wall
WINDOW_DETAIL_M = 80.0  # windows are cut (and their glass drawn) only nearer than this
PROPS_AHEAD_M = 100.0  # parked cars, poles, trees... are drawn this far ahead (a few pixels there)
BEHIND_CAMERA_M = 5.0  # ... and this far behind the camera (which looks ahead: none of it shows)


def build_scene(
    world: World, camera: CameraPose, prev_camera: CameraPose, *, show_handlebar: bool = True
) -> Scene:
    """Everything visible around the rider now, with per-instance previous model matrices."""
    c = world.config
    builder = SceneBuilder()
    s_cam = -camera.position[2]
    s_lo, s_hi = s_cam - c.keep_behind_m, s_cam + c.view_distance_m
    _add_road(builder, world, s_lo, s_hi)
    props_start, props_end = s_cam - BEHIND_CAMERA_M, s_cam + PROPS_AHEAD_M
    props_mid, props_half = (props_start + props_end) / 2, (props_end - props_start) / 2
    for k in range(math.floor(s_lo / c.block_length_m - 1.5), math.floor(s_hi / c.block_length_m) + 1):
        if k not in world.city_blocks:
            world.city_blocks[k] = build_block(k, c, world.seed)
        ground, props = world.city_blocks[k]
        builder.add_scene(ground)
        block_start = (k + 0.5) * c.block_length_m - 15.0  # its intersection's corners reach back this far
        block_end = (k + 1.5) * c.block_length_m
        if props_start < block_start and block_end < props_end:  # the whole block is in range
            builder.add_scene(props)
        elif block_start < props_end and block_end > props_start:
            builder.add_scene(props, keep=lambda batch: np.abs(batch.model[:, 2, 3] + props_mid) < props_half)
    for k in [k for k in world.city_blocks if k < math.floor(s_lo / c.block_length_m - 1.5)]:
        del world.city_blocks[k]
    if world.buildings:
        _add_buildings(builder, world, s_cam)
    if world.vehicles:
        _add_vehicles(builder, world.vehicles)
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
    n = len(lines)
    builder.add_boxes(
        [(x, 0.02, z_mid) for x, _, _ in lines],
        np.tile([c.lane_marking_width_m, 1.0, length], (n, 1)),
        [albedo for _, albedo, _ in lines],
        "lane_marking",
        mesh="quad",
        pattern=[pattern for _, _, pattern in lines],
        seed=np.arange(n) * 3.7,
    )


def _add_buildings(builder: SceneBuilder, world: World, s_cam: float) -> None:
    """Per building: a wall shell cut by its window grid, the glass recessed behind it, a cornice."""
    b = [x for x in world.buildings if x.s_start_m + x.width_m > s_cam - BEHIND_CAMERA_M]
    if not b:
        return
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
    near = np.abs(centre[:, 2] + s_cam) < size[:, 2] / 2 + WINDOW_DETAIL_M  # beyond: no cut windows
    builder.add_boxes(
        centre[near] - np.array([0, WINDOW_RECESS_M / 2, 0]),
        inner[near],
        np.array([x.glass_colour for x in b], np.float32)[near],
        "building",
        pattern=(PATTERNS["glass"], 0.0, 0.0, 0.0),
        seed=seed[near],
    )
    cornice = material != MATERIALS.index("glass")
    cornice_size = size[cornice] + np.array([0.6, 0.0, 0.6])
    cornice_size[:, 1] = 0.5
    cornice_centre = centre[cornice].copy()
    cornice_centre[:, 1] = size[cornice, 1] - 0.25
    builder.add_boxes(cornice_centre, cornice_size, colour[cornice] * 0.82, "building")


def _add_vehicles(builder: SceneBuilder, vehicles: list) -> None:
    """The traffic in one batch: per vehicle its boxes now and at the previous step."""
    pal = city_palette()
    glass, tyre = tuple(pal.darkest("building")), tuple(pal.darkest("vehicle"))
    now, prev, sizes, albedo = [], [], [], []
    for v in vehicles:
        length, width, height, d = v.length_m, v.width_m, v.height_m, v.direction  # front: -z * d
        parts = [(0.3, 0.0, (width - 0.15, 0.45, length - 0.5), tyre)]  # wheels and underbody
        if v.kind == "bus":
            parts += [
                (0.35 + (height - 0.35) / 2, 0.0, (width, height - 0.35, length), v.colour),
                (height - 1.05, 0.3, (width + 0.04, 0.9, length - 1.4), glass),
            ]
        else:
            body_h = height * 0.5
            cabin_h = height - 0.3 - body_h
            parts += [
                (0.3 + body_h / 2, 0.0, (width, body_h, length), v.colour),
                (0.3 + body_h + cabin_h / 2, -0.25, (width * 0.88, cabin_h, length * 0.5), glass),
            ]
            if v.kind == "taxi":
                parts.append((height + 0.1, -0.25, (0.6, 0.2, 0.25), TAXI_SIGN_ALBEDO))
        for y, ds, size, colour in parts:
            now.append((v.x_m, y, -(v.s_m + d * ds)))
            prev.append((v.prev_x_m, y, -(v.prev_s_m + d * ds)))
            sizes.append(size)
            albedo.append(colour)
    builder.add_boxes(now, sizes, albedo, "vehicle", prev_centres=prev)
