"""Monocular depth for real video, as relative inverse depth (larger = nearer), ``t h w`` float32.

Two backends:

- ``geometric`` (default, no weights, works offline): a ground-plane prior (inverse depth grows
  linearly with the image row below an assumed horizon, as for a flat road seen by a level camera;
  a slowly falling floor above it), smoothed with an edge-aware guided filter guided by the frame
  so that depth edges follow image edges. Two optional cues can be blended in log space: motion
  parallax where the camera moves (under forward motion, flow magnitude divided by the distance
  from the image centre is proportional to inverse depth) and local texture (nearer surfaces show
  more fine detail). Both are off by default because they measured worse (see
  ``src/conditions/README.md``: on game rides and on aloe the prior alone ranks depth best).
- ``transformers``: any transformers depth-estimation model (e.g. Depth Anything V2 Small, from a
  hub id or a local folder saved with ``save_pretrained``).
"""

from __future__ import annotations

import cv2
import numpy as np

from src.common.errors import UserError


def _box(image: np.ndarray, radius: int) -> np.ndarray:
    return cv2.boxFilter(image, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, source: np.ndarray, *, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a grey guide (both ``h w`` float32): edge-preserving smoothing
    of ``source`` that follows the edges of ``guide``."""
    mean_i, mean_p = _box(guide, radius), _box(source, radius)
    cov_ip = _box(guide * source, radius) - mean_i * mean_p
    var_i = _box(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return _box(a, radius) * guide + _box(b, radius)


def _normalise_log(x: np.ndarray) -> np.ndarray:
    """Zero median, unit robust spread (for blending cues of different units)."""
    x = x - np.median(x)
    spread = np.percentile(np.abs(x), 90) + 1e-6
    return x / spread


def guided_inverse_depth(grey: np.ndarray, log_inv: np.ndarray, *, radius_fraction: float) -> np.ndarray:
    """``h w`` float32 inverse depth from its log, smoothed first by the guided filter on the frame's
    grey image (radius a fraction of its larger side; 0: not smoothed)."""
    if radius_fraction > 0:
        radius = max(1, round(radius_fraction * max(grey.shape)))
        log_inv = guided_filter(grey, log_inv.astype(np.float32), radius=radius, eps=1e-2)
    return np.exp(log_inv).astype(np.float32)


class GeometricDepth:
    """Weight-free relative inverse depth from scene geometry priors and image/motion cues."""

    name = "geometric"

    def __init__(
        self,
        *,
        horizon_fraction: float = 0.4,
        parallax_weight: float = 0.0,
        texture_weight: float = 0.0,
        guided_radius_fraction: float = 0.06,
    ):
        self.horizon_fraction = horizon_fraction
        self.parallax_weight = parallax_weight
        self.texture_weight = texture_weight
        self.guided_radius_fraction = guided_radius_fraction

    def settings(self) -> dict:
        return {
            "name": self.name,
            "horizon_fraction": self.horizon_fraction,
            "parallax_weight": self.parallax_weight,
            "texture_weight": self.texture_weight,
            "guided_radius_fraction": self.guided_radius_fraction,
        }

    def frame(self, rgb: np.ndarray, flow: np.ndarray | None = None) -> np.ndarray:
        """``h w`` float32 relative inverse depth (positive; larger = nearer) of one frame."""
        h, w = rgb.shape[:2]
        rows = (np.arange(h, dtype=np.float32) + 0.5) / h
        horizon = self.horizon_fraction
        # ground plane: inverse depth proportional to the row's distance below the horizon;
        # above it (buildings, sky) a slowly falling floor
        ground = np.where(rows > horizon, (rows - horizon) / (1 - horizon), 0.0)
        prior = np.maximum(ground, 0.03 * np.exp(-(horizon - rows).clip(0) * 4))
        log_inv = _normalise_log(np.log(np.broadcast_to(prior[:, None], (h, w)).astype(np.float32) + 1e-3))

        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        cue_weight = 1.0
        if self.texture_weight > 0:
            detail = np.abs(cv2.Laplacian(cv2.GaussianBlur(grey, (3, 3), 0), cv2.CV_32F))
            energy = cv2.GaussianBlur(detail, (0, 0), sigmaX=max(1.0, w / 24))
            log_inv = log_inv + self.texture_weight * _normalise_log(np.log(energy + 1e-3))
            cue_weight += self.texture_weight
        if flow is not None and self.parallax_weight > 0:
            magnitude = np.linalg.norm(flow, axis=-1)
            moving = float(np.mean(magnitude > 0.5))
            if moving > 0.5:  # the camera moves: most of the image has flow
                yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
                radius = np.hypot(xx + 0.5 - w / 2, yy + 0.5 - h / 2) / max(h, w) + 0.05
                parallax = cv2.GaussianBlur(magnitude / radius, (0, 0), sigmaX=max(1.0, w / 48))
                log_inv = log_inv + self.parallax_weight * moving * _normalise_log(np.log(parallax + 1e-2))
                cue_weight += self.parallax_weight * moving
        return guided_inverse_depth(grey, log_inv / cue_weight, radius_fraction=self.guided_radius_fraction)

    def __call__(self, frames: np.ndarray, flows: np.ndarray | None = None) -> np.ndarray:
        return np.stack([self.frame(f, None if flows is None else flows[i]) for i, f in enumerate(frames)])


class TransformersDepth:
    """A transformers depth-estimation model (hub id or local folder), run on CPU or GPU.

    ``output`` says what the model predicts: ``"inverse"`` (relative inverse depth, as Depth
    Anything and DPT do) or ``"metric"`` (metres, converted to inverse depth here).
    """

    name = "transformers"

    def __init__(
        self, model: str, *, output: str = "inverse", batch_size: int = 8, device: str | None = None
    ):
        from pathlib import Path

        import torch

        looks_local = model.startswith((".", "/", "~")) or Path(model).expanduser().exists()
        if looks_local and not Path(model).expanduser().is_dir():
            raise UserError(
                f"cannot load depth model {model!r}: no such folder",
                "Pass a folder saved with save_pretrained, or a hub id such as depth-anything/Depth-Anything-V2-Small-hf.",
            )
        model = str(Path(model).expanduser()) if looks_local else model
        try:
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        except ImportError as error:  # pragma: no cover - transformers is a dependency
            raise UserError("the transformers depth backend needs transformers", "Run `uv sync`.") from error
        if output not in ("inverse", "metric"):
            raise UserError(f"depth model output must be 'inverse' or 'metric', got {output!r}")
        try:
            self.processor = AutoImageProcessor.from_pretrained(model)
            self.model = AutoModelForDepthEstimation.from_pretrained(model).eval()
        except OSError as error:
            raise UserError(
                f"cannot load depth model {model!r}: {str(error).splitlines()[0]}",
                "Pass a local folder saved with save_pretrained, or a hub id with network access "
                "(e.g. depth-anything/Depth-Anything-V2-Small-hf); or use --extract.depth_backend geometric.",
            ) from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        self.model_id, self.output, self.batch_size = model, output, batch_size

    def settings(self) -> dict:
        return {"name": self.name, "model": self.model_id, "output": self.output}

    def __call__(self, frames: np.ndarray, flows: np.ndarray | None = None) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        h, w = frames.shape[1:3]
        out = []
        for start in range(0, len(frames), self.batch_size):
            batch = list(frames[start : start + self.batch_size])
            inputs = self.processor(images=batch, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                predicted = self.model(**inputs).predicted_depth  # b h' w'
            predicted = F.interpolate(
                predicted[:, None].float(), size=(h, w), mode="bilinear", align_corners=False
            )
            predicted = predicted[:, 0].cpu().numpy()
            if self.output == "metric":
                predicted = 1.0 / np.maximum(predicted, 1e-3)
            out.append(predicted)
        return positive_inverse_depth(np.concatenate(out))  # float32 out


def positive_inverse_depth(inverse: np.ndarray) -> np.ndarray:
    """Shift each frame of relative inverse depth so its minimum sits on a small positive floor.

    encode takes the log, so every value must be above zero. The floor is a thousandth of the
    frame's 99th percentile, and never below 1e-6: a frame the model maps to all zeros or to
    negatives (a black frame, a ReLU head) still comes out positive.
    """
    flat = inverse.reshape(len(inverse), -1)
    floor = np.maximum(np.percentile(flat, 99, axis=1) * 1e-3, 1e-6)
    shift = np.maximum(0.0, floor - flat.min(axis=1))
    return (inverse + shift[:, None, None]).astype(np.float32)
