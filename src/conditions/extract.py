"""Real frames -> the G-buffer channels the game renders (a "real G-buffer").

``Extractor.extract`` returns raw channels, not encoded: ``depth`` (relative inverse depth),
``flow`` (``x_t - x_{t-1}`` in pixels), ``albedo`` (flat colour, uint8). Normals are not stored:
``encode`` derives them from depth with ``normals_from_depth``, for real and game data alike.
"""

from __future__ import annotations

import numpy as np

from src.conditions.config import ExtractConfig  # the settings live apart, free of cv2
from src.conditions.depth import GeometricDepth, TransformersDepth
from src.conditions.flat_color import FlatColor
from src.conditions.flow import DISFlow
from src.conditions.parallax_depth import ParallaxDepth


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
        elif config.depth_backend == "parallax":
            self.depth = ParallaxDepth(
                fov_y_deg=config.assumed_fov_y_deg, horizon_fraction=config.horizon_fraction
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
