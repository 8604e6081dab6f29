"""The G-buffer: the one value the game renders and the real-video extractors produce.

Shared by ``src.game`` (numpy only, never torch) and ``src.conditions``.
Units and conventions (the contract in ARCHITECTURE.md):

- ``color``    h w 3 uint8   the lit raster view (game) or the real frame (video)
- ``depth``    h w float32   ``depth_kind == "metric"``: linear view-space distance along the
                             camera axis in metres (game; sky = ``SKY_DEPTH_M``);
                             ``"inverse_relative"``: relative inverse depth, larger = nearer (extracted)
- ``flow``     h w 2 float32 motion of the surface seen at each pixel from the previous frame to this
                             one, ``x_t - x_{t-1}``, in pixels of this frame; x right, y down
- ``normals``  h w 3 float32 view-space unit normals, OpenGL camera axes (x right, y up, +z toward the
                             camera)
- ``albedo``   h w 3 uint8   unlit flat colour (game) or flattened, colour-quantised frame (video)
- ``semantic`` h w uint8     class id per pixel (game only, see ``SEMANTIC_CLASSES``), else None
"""

from __future__ import annotations

import dataclasses

import numpy as np

SKY_DEPTH_M = 1000.0

SEMANTIC_CLASSES: dict[str, int] = {
    "sky": 0,
    "road": 1,
    "lane_marking": 2,
    "sidewalk": 3,
    "curb": 4,
    "building": 5,
    "vehicle": 6,
    "pole": 7,
    "tree": 8,
    "bicycle": 9,
    "traffic_light": 10,
    "sign": 11,
    "wire": 12,
    "planter": 13,
}

GBUFFER_CHANNELS = ("color", "depth", "flow", "normals", "albedo", "semantic")


@dataclasses.dataclass
class GBuffer:
    color: np.ndarray
    depth: np.ndarray
    flow: np.ndarray
    normals: np.ndarray
    albedo: np.ndarray
    semantic: np.ndarray | None = None
    depth_kind: str = "metric"

    def __post_init__(self) -> None:
        h, w = self.depth.shape[:2]
        expected = {
            "color": (h, w, 3),
            "depth": (h, w),
            "flow": (h, w, 2),
            "normals": (h, w, 3),
            "albedo": (h, w, 3),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if value.shape != shape:
                raise ValueError(f"GBuffer.{name} has shape {value.shape}, expected {shape}")
        if self.depth_kind not in ("metric", "inverse_relative"):
            raise ValueError(
                f"GBuffer.depth_kind must be 'metric' or 'inverse_relative', got {self.depth_kind!r}"
            )

    @property
    def height(self) -> int:
        return int(self.depth.shape[0])

    @property
    def width(self) -> int:
        return int(self.depth.shape[1])

    def arrays(self) -> dict[str, np.ndarray]:
        """The channels as a dict of arrays (``semantic`` only when present)."""
        out = {name: getattr(self, name) for name in GBUFFER_CHANNELS if getattr(self, name) is not None}
        return out


def stack_gbuffers(frames: list[GBuffer]) -> dict[str, np.ndarray]:
    """Stack frames into ``t h w ...`` arrays per channel (what clips and files store)."""
    if not frames:
        raise ValueError("no frames to stack")
    names = frames[0].arrays().keys()
    return {name: np.stack([getattr(f, name) for f in frames]) for name in names}
