"""A flattened, colour-quantised version of a real frame that resembles the game's unlit albedo.

Three steps: flatten the lighting (divide out a heavily blurred luminance, a simple retinex), smooth
while keeping edges (bilateral filter), and quantise to a small palette fitted once per video with
k-means in Lab space (one palette per video keeps colours stable from frame to frame).
"""

from __future__ import annotations

import cv2
import numpy as np

FIT_FRAMES = 16
"""the palette is fitted on at most this many evenly spaced frames of a video"""


def fit_frame_indices(num_frames: int) -> np.ndarray:
    """Which of a video's ``num_frames`` frames the palette is fitted on: at most ``FIT_FRAMES``,
    evenly spaced from the first to the last (so a caller can hold only these in memory)."""
    return np.linspace(0, num_frames - 1, min(FIT_FRAMES, num_frames)).round().astype(int)


class FlatColor:
    name = "flat_color"

    def __init__(
        self,
        *,
        num_colors: int = 12,
        lighting_strength: float = 0.7,
        smoothing_passes: int = 2,
        seed: int = 0,
    ):
        self.num_colors = num_colors
        self.lighting_strength = lighting_strength
        self.smoothing_passes = smoothing_passes
        self.seed = seed
        self.palette_lab: np.ndarray | None = None  # k 3 float32

    def settings(self) -> dict:
        return {
            "name": self.name,
            "num_colors": self.num_colors,
            "lighting_strength": self.lighting_strength,
            "smoothing_passes": self.smoothing_passes,
        }

    def _flatten(self, rgb: np.ndarray) -> np.ndarray:
        """Lighting-flattened, edge-preserving-smoothed frame (h w 3 uint8)."""
        image = rgb.astype(np.float32) / 255.0
        h, w = image.shape[:2]
        if self.lighting_strength > 0:
            luminance = image @ np.array([0.299, 0.587, 0.114], np.float32)
            shading = cv2.GaussianBlur(luminance, (0, 0), sigmaX=max(2.0, max(h, w) / 8)) + 0.05
            gain = (np.mean(shading) / shading) ** self.lighting_strength
            image = np.clip(image * gain[..., None], 0, 1)
        image8 = (image * 255 + 0.5).astype(np.uint8)
        diameter = max(3, round(max(h, w) / 24) | 1)
        for _ in range(self.smoothing_passes):
            image8 = cv2.bilateralFilter(image8, diameter, 40, diameter)
        return image8

    def fit(self, frames: np.ndarray) -> None:
        """Fit the palette on pixels sampled from up to ``FIT_FRAMES`` frames of a video (``t h w 3``
        uint8). Given exactly the frames ``fit_frame_indices`` picks, it uses all of them, so the
        palette equals the one fitted on the whole video."""
        rng = np.random.default_rng(self.seed)
        picks = fit_frame_indices(len(frames))
        pixels = []
        for i in picks:
            lab = cv2.cvtColor(self._flatten(frames[i]), cv2.COLOR_RGB2LAB).reshape(-1, 3)
            pixels.append(lab[rng.choice(len(lab), size=min(len(lab), 2000), replace=False)])
        samples = np.concatenate(pixels).astype(np.float32)
        k = min(self.num_colors, len(np.unique(samples, axis=0)))
        cv2.setRNGSeed(self.seed)
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.5)
        _, _, centres = cv2.kmeans(samples, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
        self.palette_lab = centres.astype(np.float32)

    def frame(self, rgb: np.ndarray) -> np.ndarray:
        """The flat colour of one frame (``h w 3`` uint8)."""
        if self.palette_lab is None:
            self.fit(rgb[None])
        lab = cv2.cvtColor(self._flatten(rgb), cv2.COLOR_RGB2LAB).astype(np.float32)
        distances = ((lab[:, :, None, :] - self.palette_lab[None, None]) ** 2).sum(-1)
        quantised = self.palette_lab[distances.argmin(-1)].round().clip(0, 255).astype(np.uint8)
        quantised = cv2.medianBlur(quantised, 3)  # drop single-pixel speckles
        return cv2.cvtColor(quantised, cv2.COLOR_LAB2RGB)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return np.stack([self.frame(f) for f in frames])
