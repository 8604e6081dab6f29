"""Unit meshes, instance batches and the ``SceneBuilder`` that collects them (numpy only).

A scene is a set of instance batches, one per mesh. Every instance carries its current model
matrix and the model matrix of the *same surface* at the previous world step (static city: the
same matrix; vehicles: their previous pose; the handlebar: the previous camera), which is what
makes the renderer's per-object motion vectors exact; and a surface pattern with its parameters
(``PATTERNS``; drawn by ``game/shaders/gbuffer.frag``) with the instance's size and a seed.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from src.common.gbuffer import SEMANTIC_CLASSES

# surface patterns of game/shaders/gbuffer.frag (pattern id, then three parameters)
PATTERNS = {
    "plain": 0,
    "facade": 1,  # floor height m, window bay m, material index (city.MATERIALS)
    "asphalt": 2,  # world x and z of the instance centre
    "marking": 3,  # dash length m (0: continuous), dash period m, world z of the centre
    "slabs": 4,  # world x and z of the centre, slab side m
    "crosswalk": 5,  # bar axis (0: along x, 1: along z), bar period m
    "glass": 6,
    "traffic_light": 7,  # the lit lamp (0 red, 1 amber, 2 green)
}


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
    "cylinder": _cylinder_vertices(8),
    "sphere": _sphere_vertices(4, 6),
}


@dataclasses.dataclass
class InstanceBatch:
    """n instances of one mesh."""

    model: np.ndarray  # n 4 4 float64, object to world now
    prev_model: np.ndarray  # n 4 4 float64, the same surface at the previous step
    albedo: np.ndarray  # n 3 float32 in [0, 1]
    semantic: np.ndarray  # n uint8
    pattern: np.ndarray  # n 4 float32: pattern id and its three parameters
    size_seed: np.ndarray  # n 4 float32: size along the mesh's axes in metres, a seed

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


def _rows(value, n: int, dtype=np.float32) -> np.ndarray:
    value = np.asarray(value, dtype)
    return np.broadcast_to(value.reshape(-1, value.shape[-1] if value.ndim else 1), (n, value.shape[-1]))


class SceneBuilder:
    """Collects instances per mesh and freezes them into a ``Scene``."""

    def __init__(self) -> None:
        self._parts: dict[str, list[tuple]] = {name: [] for name in MESHES}

    def add(
        self,
        mesh: str,
        models: np.ndarray,
        albedo,
        semantic: str,
        prev_models: np.ndarray | None = None,
        *,
        pattern=(0.0, 0.0, 0.0, 0.0),
        seed=0.0,
    ) -> None:
        """n instances of ``mesh``; ``pattern`` (4 or n 4) and ``seed`` (scalar or n) as PATTERNS says."""
        models = np.asarray(models, float).reshape(-1, 4, 4)
        n = len(models)
        if n == 0:
            return
        prev = models if prev_models is None else np.asarray(prev_models, float).reshape(-1, 4, 4)
        size_seed = np.empty((n, 4), np.float32)
        size_seed[:, :3] = np.linalg.norm(models[:, :3, :3], axis=1)  # the scale along each axis
        size_seed[:, 3] = np.broadcast_to(np.asarray(seed, np.float32), (n,))
        semantic_ids = np.full(n, SEMANTIC_CLASSES[semantic], np.uint8)
        self._parts[mesh].append((models, prev, _rows(albedo, n), semantic_ids, _rows(pattern, n), size_seed))

    def add_boxes(
        self, centres, sizes, albedo, semantic: str, prev_centres=None, mesh: str = "box", **pattern
    ) -> None:
        prev = None if prev_centres is None else box_models(prev_centres, sizes)
        self.add(mesh, box_models(centres, sizes), albedo, semantic, prev, **pattern)

    def add_scene(self, scene: Scene, keep=None) -> None:
        """Every batch of a prebuilt scene (a city block); ``keep(batch)``: only those instances."""
        for name, batch in scene.items():
            arrays = (
                batch.model,
                batch.prev_model,
                batch.albedo,
                batch.semantic,
                batch.pattern,
                batch.size_seed,
            )
            if keep is not None:
                mask = keep(batch)
                arrays = tuple(a[mask] for a in arrays)
            self._parts[name].append(arrays)

    def build(self) -> Scene:
        scene = {}
        for name, parts in self._parts.items():
            if parts:
                scene[name] = InstanceBatch(*(np.concatenate([p[i] for p in parts]) for i in range(6)))
        return scene
