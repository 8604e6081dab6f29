"""Unit meshes and the per-frame scene: which mesh is drawn where, how it moved, what it is.

The scene is a set of instance batches, one per mesh. Every instance carries its current
model matrix and the model matrix of the *same surface* at the previous world step
(static city: the same matrix; vehicles: their previous pose; the handlebar: the previous
camera), which is what makes the renderer's per-object motion vectors exact.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from src.common.gbuffer import SEMANTIC_CLASSES
from src.game.camera import CameraPose
from src.game.world import World


def _box_vertices() -> np.ndarray:
    """Unit cube centred at the origin, flat normals, counter-clockwise outward (36 6)."""
    faces = [  # normal, two tangent axes (u x v = normal)
        ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
        ((-1, 0, 0), (0, 0, 1), (0, 1, 0)),
        ((0, 1, 0), (0, 0, 1), (1, 0, 0)),
        ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
        ((0, 0, 1), (1, 0, 0), (0, 1, 0)),
        ((0, 0, -1), (0, 1, 0), (1, 0, 0)),
    ]
    out = []
    for normal, u, v in faces:
        n, u, v = np.array(normal, float), np.array(u, float), np.array(v, float)
        corners = [0.5 * (n - u - v), 0.5 * (n + u - v), 0.5 * (n + u + v), 0.5 * (n - u + v)]
        for index in (0, 1, 2, 0, 2, 3):
            out.append(np.concatenate([corners[index], n]))
    return np.array(out, dtype=np.float32)


def _quad_vertices() -> np.ndarray:
    """Unit square in the xz plane at y = 0, facing up (6 6)."""
    corners = [(-0.5, 0, 0.5), (0.5, 0, 0.5), (0.5, 0, -0.5), (-0.5, 0, -0.5)]
    return np.array([(*corners[i], 0, 1, 0) for i in (0, 1, 2, 0, 2, 3)], dtype=np.float32)


def _cylinder_vertices(sides: int = 10) -> np.ndarray:
    """Cylinder of diameter 1 and height 1 centred at the origin, flat-shaded sides and top."""
    out = []
    for i in range(sides):
        a0, a1 = 2 * math.pi * i / sides, 2 * math.pi * (i + 1) / sides
        p0 = np.array([0.5 * math.cos(a0), 0, -0.5 * math.sin(a0)])
        p1 = np.array([0.5 * math.cos(a1), 0, -0.5 * math.sin(a1)])
        mid = (a0 + a1) / 2
        n = np.array([math.cos(mid), 0, -math.sin(mid)])
        low, high = np.array([0, -0.5, 0]), np.array([0, 0.5, 0])
        for p in (p0 + low, p1 + low, p1 + high, p0 + low, p1 + high, p0 + high):
            out.append(np.concatenate([p, n]))
        for p in (high, p0 + high, p1 + high):
            out.append(np.concatenate([p, (0, 1, 0)]))
    return np.array(out, dtype=np.float32)


def _sphere_vertices(rings: int = 5, segments: int = 8) -> np.ndarray:
    """Low-poly faceted sphere of diameter 1 (a tree canopy)."""

    def point(ring: int, segment: int) -> np.ndarray:
        theta, phi = math.pi * ring / rings, 2 * math.pi * segment / segments
        return 0.5 * np.array(
            [math.sin(theta) * math.cos(phi), math.cos(theta), -math.sin(theta) * math.sin(phi)]
        )

    out = []
    for r in range(rings):
        for s in range(segments):
            a, b, c, d = point(r, s), point(r + 1, s), point(r + 1, s + 1), point(r, s + 1)
            for tri in ((a, b, c), (a, c, d)):
                normal = np.cross(tri[1] - tri[0], tri[2] - tri[0])
                if np.linalg.norm(normal) < 1e-9:
                    continue  # degenerate triangle at a pole
                normal /= np.linalg.norm(normal)
                if normal @ (tri[0] + tri[1] + tri[2]) < 0:
                    normal = -normal
                for p in tri:
                    out.append(np.concatenate([p, normal]))
    return np.array(out, dtype=np.float32)


MESHES: dict[str, np.ndarray] = {
    "box": _box_vertices(),
    "quad": _quad_vertices(),
    "cylinder": _cylinder_vertices(),
    "sphere": _sphere_vertices(),
}


@dataclasses.dataclass
class InstanceBatch:
    """n instances of one mesh."""

    model: np.ndarray  # n 4 4 float64, object to world now
    prev_model: np.ndarray  # n 4 4 float64, the same surface at the previous step
    albedo: np.ndarray  # n 3 float32 in [0, 1]
    semantic: np.ndarray  # n uint8

    def __len__(self) -> int:
        return len(self.model)


Scene = dict[str, InstanceBatch]


def box_models(centres: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Axis-aligned boxes (n 3 centres, n 3 sizes) -> model matrices (n 4 4)."""
    centres, sizes = np.asarray(centres, float).reshape(-1, 3), np.asarray(sizes, float).reshape(-1, 3)
    models = np.zeros((len(centres), 4, 4))
    models[:, 0, 0], models[:, 1, 1], models[:, 2, 2] = sizes[:, 0], sizes[:, 1], sizes[:, 2]
    models[:, :3, 3] = centres
    models[:, 3, 3] = 1.0
    return models


class SceneBuilder:
    """Collects instances per mesh and freezes them into a ``Scene``."""

    def __init__(self) -> None:
        self._parts: dict[str, list[tuple]] = {name: [] for name in MESHES}

    def add(
        self, mesh: str, models: np.ndarray, albedo, semantic: str, prev_models: np.ndarray | None = None
    ) -> None:
        models = np.asarray(models, float).reshape(-1, 4, 4)
        if len(models) == 0:
            return
        prev = models if prev_models is None else np.asarray(prev_models, float).reshape(-1, 4, 4)
        albedo = np.broadcast_to(np.asarray(albedo, np.float32).reshape(-1, 3), (len(models), 3))
        semantic_ids = np.full(len(models), SEMANTIC_CLASSES[semantic], np.uint8)
        self._parts[mesh].append((models, prev, albedo, semantic_ids))

    def add_boxes(self, centres, sizes, albedo, semantic: str, prev_centres=None, mesh: str = "box") -> None:
        prev = None if prev_centres is None else box_models(prev_centres, sizes)
        self.add(mesh, box_models(centres, sizes), albedo, semantic, prev)

    def build(self) -> Scene:
        scene = {}
        for name, parts in self._parts.items():
            if parts:
                scene[name] = InstanceBatch(*(np.concatenate([p[i] for p in parts]) for i in range(4)))
        return scene


def _hash01(index: np.ndarray, salt: float) -> np.ndarray:
    """A cheap deterministic pseudo-random number in [0, 1) per integer (tree sizes)."""
    value = np.sin(index * 12.9898 + salt * 78.233) * 43758.5453
    return value - np.floor(value)


ROAD_ALBEDO = (0.23, 0.23, 0.25)
MARKING_WHITE = (0.9, 0.9, 0.88)
MARKING_YELLOW = (0.9, 0.72, 0.1)
CURB_ALBEDO = (0.62, 0.62, 0.6)
SIDEWALK_ALBEDO = (0.5, 0.48, 0.45)
POLE_ALBEDO = (0.2, 0.22, 0.24)
LAMP_ALBEDO = (0.95, 0.92, 0.75)
TRUNK_ALBEDO = (0.35, 0.24, 0.15)
CANOPY_ALBEDO = (0.2, 0.45, 0.18)
GLASS_ALBEDO = (0.12, 0.15, 0.2)
TYRE_ALBEDO = (0.06, 0.06, 0.06)
BIKE_ALBEDO = (0.1, 0.1, 0.12)


def build_scene(
    world: World, camera: CameraPose, prev_camera: CameraPose, *, show_handlebar: bool = True
) -> Scene:
    """Everything visible around the rider now, with per-instance previous model matrices."""
    c = world.config
    builder = SceneBuilder()
    s_cam = -camera.position[2]
    s_lo, s_hi = s_cam - c.keep_behind_m, s_cam + c.view_distance_m
    length, s_mid = s_hi - s_lo, (s_lo + s_hi) / 2
    half = world.road_half_width_m

    # road surface and continuous lines: long quads (a plane is its own previous pose)
    builder.add_boxes([(0, 0, -s_mid)], [(2 * half, 1, length)], ROAD_ALBEDO, "road", mesh="quad")
    line_w = c.lane_marking_width_m
    builder.add_boxes(
        [(-0.15, 0.02, -s_mid), (0.15, 0.02, -s_mid)],
        [(line_w, 1, length)] * 2,
        MARKING_YELLOW,
        "lane_marking",
        mesh="quad",
    )
    edge_x = half - 0.4
    builder.add_boxes(
        [(-edge_x, 0.02, -s_mid), (edge_x, 0.02, -s_mid)],
        [(line_w, 1, length)] * 2,
        MARKING_WHITE,
        "lane_marking",
        mesh="quad",
    )
    # dashed lane separators, fixed to the world
    period = c.lane_marking_length_m + c.lane_marking_gap_m
    dash_s = (
        np.arange(math.floor(s_lo / period), math.ceil(s_hi / period)) * period + c.lane_marking_length_m / 2
    )
    xs = [sign * k * c.lane_width_m for k in range(1, c.lanes_per_direction) for sign in (-1, 1)]
    if xs and len(dash_s):
        grid_x, grid_s = np.meshgrid(np.array(xs, float), dash_s)
        centres = np.stack([grid_x.ravel(), np.full(grid_x.size, 0.02), -grid_s.ravel()], -1)
        builder.add_boxes(
            centres,
            np.tile([line_w, 1, c.lane_marking_length_m], (len(centres), 1)),
            MARKING_WHITE,
            "lane_marking",
            mesh="quad",
        )
    # curbs and sidewalks (the sidewalk runs on under the buildings so there is no gap)
    sidewalk_w = c.sidewalk_width_m + 80.0
    for side in (-1, 1):
        builder.add_boxes(
            [(side * (half + c.curb_width_m / 2), c.curb_height_m / 2, -s_mid)],
            [(c.curb_width_m, c.curb_height_m, length)],
            CURB_ALBEDO,
            "curb",
        )
        builder.add_boxes(
            [(side * (half + c.curb_width_m + sidewalk_w / 2), c.curb_height_m / 2 - 0.005, -s_mid)],
            [(sidewalk_w, c.curb_height_m - 0.01, length)],
            SIDEWALK_ALBEDO,
            "sidewalk",
        )
    facade_x = half + c.curb_width_m + c.sidewalk_width_m

    # buildings, with a darker ground floor band
    if world.buildings:
        b = world.buildings
        side = np.array([x.side for x in b], float)
        depth = np.array([x.depth_m for x in b])
        height = np.array([x.height_m for x in b])
        width = np.array([x.width_m for x in b])
        setback = np.array([x.setback_m for x in b])
        s_centre = np.array([x.s_start_m for x in b]) + width / 2
        colour = np.array([x.colour for x in b], np.float32)
        x_centre = side * (facade_x + setback + depth / 2)
        builder.add_boxes(
            np.stack([x_centre, height / 2, -s_centre], -1),
            np.stack([depth, height, width], -1),
            colour,
            "building",
        )
        band_h = np.minimum(3.5, height * 0.4)
        builder.add_boxes(
            np.stack([x_centre - side * 0.1, band_h / 2, -s_centre], -1),
            np.stack([depth, band_h, width - 0.6], -1),
            colour * 0.55,
            "building",
        )

    # lamp posts and trees on both sidewalks, at fixed spacings
    lamp_s = (
        np.arange(math.ceil(s_lo / c.lamp_spacing_m), math.floor(s_hi / c.lamp_spacing_m) + 1)
        * c.lamp_spacing_m
    )
    tree_index = np.arange(
        math.ceil(s_lo / c.tree_spacing_m - 0.5), math.floor(s_hi / c.tree_spacing_m - 0.5) + 1
    )
    tree_s = (tree_index + 0.5) * c.tree_spacing_m
    for side in (-1, 1):
        pole_x = side * (half + c.curb_width_m + 0.6)
        n = len(lamp_s)
        if n:
            builder.add_boxes(
                np.stack([np.full(n, pole_x), np.full(n, 3.0), -lamp_s], -1),
                np.tile([0.16, 6.0, 0.16], (n, 1)),
                POLE_ALBEDO,
                "pole",
                mesh="cylinder",
            )
            builder.add_boxes(
                np.stack([np.full(n, pole_x - side * 0.8), np.full(n, 6.0), -lamp_s], -1),
                np.tile([1.6, 0.1, 0.1], (n, 1)),
                POLE_ALBEDO,
                "pole",
            )
            builder.add_boxes(
                np.stack([np.full(n, pole_x - side * 1.5), np.full(n, 5.9), -lamp_s], -1),
                np.tile([0.6, 0.15, 0.3], (n, 1)),
                LAMP_ALBEDO,
                "pole",
            )
        m = len(tree_s)
        if m:
            size = 2.4 + 1.4 * _hash01(tree_index * side, 1.0)
            tree_x = side * (half + c.curb_width_m + 2.0)
            builder.add_boxes(
                np.stack([np.full(m, tree_x), np.full(m, 1.3), -tree_s], -1),
                np.tile([0.3, 2.6, 0.3], (m, 1)),
                TRUNK_ALBEDO,
                "tree",
                mesh="cylinder",
            )
            builder.add_boxes(
                np.stack([np.full(m, tree_x), 2.4 + size / 2, -tree_s], -1),
                np.stack([size, size * 1.1, size], -1),
                CANOPY_ALBEDO,
                "tree",
                mesh="sphere",
            )

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

    colour = vehicle.colour
    add(0, 0.3, 0, (width - 0.15, 0.45, length - 0.5), TYRE_ALBEDO)  # wheels and underbody
    if vehicle.kind == "bus":
        add(0, 0.35 + (height - 0.35) / 2, 0, (width, height - 0.35, length), colour)
        add(0, height - 1.05, 0.3, (width + 0.04, 0.9, length - 1.4), GLASS_ALBEDO)
        return
    body_h = height * 0.5
    add(0, 0.3 + body_h / 2, 0, (width, body_h, length), colour)
    cabin_h = height - 0.3 - body_h
    add(0, 0.3 + body_h + cabin_h / 2, -0.25, (width * 0.88, cabin_h, length * 0.5), GLASS_ALBEDO)
    if vehicle.kind == "taxi":
        add(0, height + 0.1, -0.25, (0.6, 0.2, 0.25), (0.98, 0.95, 0.6))
