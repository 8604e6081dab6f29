"""Real frames -> the G-buffer channels the game renders (a "real G-buffer").

``Extractor.extract`` returns raw channels, not encoded: ``depth`` (relative inverse depth),
``flow`` (``x_t - x_{t-1}`` in pixels), ``albedo`` (flat colour, uint8). Normals are not stored:
``encode`` derives them from depth with ``normals_from_depth``, for real and game data alike.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from src.common.errors import UserError
from src.conditions.depth import GeometricDepth, TransformersDepth
from src.conditions.flat_color import FlatColor
from src.conditions.flow import DISFlow


@dataclasses.dataclass
class ExtractConfig:
    """Which extractors turn real frames into G-buffer channels, and their settings."""

    RANGES = {  # each numeric field's allowed values (src/common/config.py check_ranges)
        "depth_batch_size": "[1, inf)",
        "horizon_fraction": "[0, 1]",
        "parallax_weight": "[0, inf)",
        "texture_weight": "[0, inf)",
        "flat_num_colors": "[1, inf)",
        "flat_lighting_strength": "[0, 1]",
        "assumed_fov_y_deg": "(0, 180)",
    }

    flow_backend: str = "dis"
    """optical flow: only "dis" (OpenCV DIS, weight-free)"""
    dis_preset: str = "medium"
    """DIS flow quality: ultrafast | fast | medium"""
    depth_backend: str = "geometric"
    """depth: geometric (weight-free, offline) | transformers"""
    depth_model: str = "depth-anything/Depth-Anything-V2-Small-hf"
    """transformers depth model: hub id or local folder"""
    depth_model_output: str = "inverse"
    """what the transformers depth model predicts: inverse | metric"""
    depth_batch_size: int = 8
    """frames per batch of the transformers depth model"""
    horizon_fraction: float = 0.4
    """geometric: assumed horizon row as a fraction of the height"""
    parallax_weight: float = 0.0
    """geometric: weight of the motion-parallax cue (measured worse: off)"""
    texture_weight: float = 0.0
    """geometric: weight of the local-texture cue (measured worse: off)"""
    flat_num_colors: int = 12
    """flat colour palette size per video"""
    flat_lighting_strength: float = 0.7
    """flat colour: 0 = keep lighting, 1 = divide it out fully"""
    assumed_fov_y_deg: float = 70.0
    """real video's vertical field of view for normals from depth (the game uses 70)"""

    def __post_init__(self) -> None:
        if self.flow_backend != "dis":
            raise UserError(f"unknown flow backend {self.flow_backend!r}", "Use 'dis'.")
        if self.depth_backend not in ("geometric", "transformers"):
            raise UserError(
                f"unknown depth backend {self.depth_backend!r}", "Use 'geometric' or 'transformers'."
            )


class Extractor:
    """Holds the flow, depth and flat-colour extractors built from an ``ExtractConfig``."""

    def __init__(self, config: ExtractConfig):
        self.config = config
        self.flow = DISFlow(config.dis_preset)
        if config.depth_backend == "geometric":
            self.depth = GeometricDepth(
                horizon_fraction=config.horizon_fraction,
                parallax_weight=config.parallax_weight,
                texture_weight=config.texture_weight,
            )
        else:
            self.depth = TransformersDepth(
                config.depth_model, output=config.depth_model_output, batch_size=config.depth_batch_size
            )
        self.flat = FlatColor(
            num_colors=config.flat_num_colors, lighting_strength=config.flat_lighting_strength
        )

    def settings(self) -> dict:
        """Names and settings of every extractor (stored in the dataset manifest)."""
        return {
            "flow": self.flow.settings(),
            "depth": self.depth.settings(),
            "albedo": self.flat.settings(),
            "normals": {
                "name": "normals_from_depth",
                "fov_y_deg": self.config.assumed_fov_y_deg,
                "stored": False,
            },
        }

    def fit(self, frames: np.ndarray) -> None:
        """Per-video state (the flat-colour palette) from a video's frames (``t h w 3`` uint8)."""
        self.flat.fit(frames)

    def extract(self, frames: np.ndarray, previous: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Raw channels of ``t h w 3`` uint8 frames; ``previous`` is the frame before them (for flow).

        Returns ``depth`` t h w float32 (relative inverse depth), ``flow`` t h w 2 float32,
        ``albedo`` t h w 3 uint8.
        """
        flow = self.flow.clip(frames, previous)
        depth = self.depth(frames, flow)
        albedo = self.flat(frames)
        return {"depth": depth.astype(np.float32), "flow": flow, "albedo": albedo}
