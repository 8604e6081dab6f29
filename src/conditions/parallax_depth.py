"""Depth from motion parallax: relative inverse depth of a moving camera's frames from their flow.

For videos with no depth sidecar. A camera that moves through a static scene sees each point
move by a rotational part, the same for every depth, plus a translational part that points away
from the focus of expansion (FOE) and grows with inverse depth. In normalised image coordinates
``p = (x, y)`` (pixels less the centre, over the focal length) and for a small rotation ``w``:

    flow(p) = R(p) w + s(p) (p - e),     s(p) = T_z / Z(p)

(Longuet-Higgins and Prazdny), with ``R(p)`` the 2x3 rotational basis, ``e`` the FOE and ``T_z``
the forward speed. Per frame ``ParallaxDepth``:

1. finds ``e`` and ``w``: for a candidate ``e`` the part of the flow across the ray from ``e``
   is linear in ``w`` (least squares); the ``e`` whose median cross-ray residual is smallest
   wins, searched on a coarse grid, then on finer ones around the best;
2. takes ``s(p)``, the derotated flow along the ray, divided by ``|p - e|`` (proportional to
   inverse depth; its scale does not matter, ``encode`` divides by the frame's median);
3. trusts it where the ray is long and the flow well explained: the confidence grows with
   ``|p - e|`` and falls with the cross-ray residual; where it is low (near the FOE, on
   textureless sky, on objects that move themselves) the ground-plane prior of ``GeometricDepth``
   fills in, blended in log space;
4. smooths the result with the guided filter on the frame, as the prior is.

A camera that barely moves (median flow under ``min_motion_px``) or turns without moving forward
gives no parallax: that frame is the prior alone. Everything runs on the CPU in numpy and OpenCV.
"""

from __future__ import annotations

import cv2
import numpy as np

from src.conditions.depth import GeometricDepth, _normalise_log, guided_inverse_depth


def rotational_basis(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotational flow's basis at normalised coordinates ``x``, ``y`` (each ``n``): ``(n 3, n 3)``
    such that ``u_rot = Bu @ w`` and ``v_rot = Bv @ w`` for a small rotation ``w``."""
    bu = np.stack([x * y, -(1 + x * x), y], axis=-1)
    bv = np.stack([1 + y * y, -x * y, -x], axis=-1)
    return bu, bv


def fit_motion(
    x: np.ndarray,
    y: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    *,
    search: float = 0.35,
    steps: int = 9,
    levels: int = 4,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The FOE ``e`` (2), rotation ``w`` (3) and median cross-ray residual that best explain the
    normalised flow ``u``, ``v`` at ``x``, ``y`` (each ``n``): a grid search over ``e`` in
    ``[-search, search]^2``, then ``levels - 1`` finer grids, each around the best so far (see the
    module docstring)."""
    bu, bv = rotational_basis(x, y)
    best = (np.zeros(2), np.zeros(3), np.inf)
    centre, half = np.zeros(2), search
    for _ in range(levels):
        for ex in np.linspace(centre[0] - half, centre[0] + half, steps):
            for ey in np.linspace(centre[1] - half, centre[1] + half, steps):
                dx, dy = x - ex, y - ey
                length = np.hypot(dx, dy) + 1e-6
                nx, ny = -dy / length, dx / length  # unit normal to the ray from the FOE
                a = bu * nx[:, None] + bv * ny[:, None]  # cross-ray rotational flow per unit w
                b = u * nx + v * ny
                w, *_ = np.linalg.lstsq(a, b, rcond=None)
                residual = float(np.median(np.abs(b - a @ w)))
                if residual < best[2]:
                    best = (np.array([ex, ey]), w, residual)
        centre, half = best[0], 2 * half / (steps - 1)
    return best


class ParallaxDepth:
    """Relative inverse depth from flow and the camera's motion, with the ground-plane prior where
    the parallax says nothing (module docstring). ``fov_y_deg``: the video's vertical field of
    view, for the normalised coordinates."""

    name = "parallax"

    def __init__(
        self,
        *,
        fov_y_deg: float = 70.0,
        horizon_fraction: float = 0.4,
        min_motion_px: float = 0.3,
        prior_weight: float = 0.3,
        guided_radius_fraction: float = 0.03,
        fit_stride: int = 4,
    ):
        self.fov_y_deg = fov_y_deg
        self.min_motion_px = min_motion_px
        self.prior_weight = prior_weight
        self.guided_radius_fraction = guided_radius_fraction
        self.fit_stride = fit_stride
        self.prior = GeometricDepth(horizon_fraction=horizon_fraction, guided_radius_fraction=0.0)
        self.last_fit: dict | None = None  # the last frame's FOE, rotation and residual (for tests)

    def settings(self) -> dict:
        return {
            "name": self.name,
            "fov_y_deg": self.fov_y_deg,
            "horizon_fraction": self.prior.horizon_fraction,
            "min_motion_px": self.min_motion_px,
            "prior_weight": self.prior_weight,
            "guided_radius_fraction": self.guided_radius_fraction,
        }

    def frame(self, rgb: np.ndarray, flow: np.ndarray | None = None) -> np.ndarray:
        """``h w`` float32 relative inverse depth (positive; larger = nearer) of one frame."""
        log_inv = np.log(self.prior.frame(rgb))  # the prior, zero median
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        self.last_fit = None
        if flow is not None and float(np.median(np.linalg.norm(flow, axis=-1))) >= self.min_motion_px:
            log_inv = self._with_parallax(log_inv, flow.astype(np.float32))
        return guided_inverse_depth(grey, log_inv, radius_fraction=self.guided_radius_fraction)

    def _with_parallax(self, prior_log: np.ndarray, flow: np.ndarray) -> np.ndarray:
        h, w = prior_log.shape
        focal = (h / 2) / np.tan(np.radians(self.fov_y_deg) / 2)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        x, y = (xx + 0.5 - w / 2) / focal, (yy + 0.5 - h / 2) / focal
        u, v = flow[..., 0] / focal, flow[..., 1] / focal
        k = self.fit_stride
        foe, rotation, residual = fit_motion(
            x[::k, ::k].ravel(), y[::k, ::k].ravel(), u[::k, ::k].ravel(), v[::k, ::k].ravel()
        )
        self.last_fit = {"foe": foe, "rotation": rotation, "residual": residual}
        bu, bv = rotational_basis(x.ravel(), y.ravel())
        du = u - (bu @ rotation).reshape(h, w)
        dv = v - (bv @ rotation).reshape(h, w)
        dx, dy = x - foe[0], y - foe[1]
        ray = np.hypot(dx, dy) + 1e-6
        along = (du * dx + dv * dy) / ray  # derotated flow along the ray: s |p - e|
        across = np.abs(du * dy - dv * dx) / ray
        s = along / ray  # proportional to inverse depth
        if float(np.median(s)) <= 0:  # backwards or no forward motion: no usable parallax
            return prior_log
        parallax_log = _normalise_log(np.log(np.maximum(s, 1e-3 * float(np.median(s)))))
        # trust: long rays (|flow| well above the noise there) and flow the motion explains
        noise = residual + 1e-6
        confidence = np.clip(along / (4 * noise), 0, 1) * np.exp(-across / (2 * noise))
        confidence = cv2.GaussianBlur(confidence.astype(np.float32), (0, 0), sigmaX=max(1.0, w / 64))
        # prior_log is already normalised (GeometricDepth's zero median, unit spread)
        return (confidence * parallax_log + self.prior_weight * prior_log) / (confidence + self.prior_weight)

    __call__ = GeometricDepth.__call__  # frame by frame, each with its flow
