"""View-space normals from a depth map: the one function both domains go through.

The game's metric depth and the depth extracted from real video (relative inverse depth turned
back into a relative depth) become normals here, with pinhole intrinsics from a vertical field of
view. Normals do not depend on the depth's global scale, so relative depth is enough.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def normals_from_depth(
    depth: np.ndarray | torch.Tensor, *, fov_y_deg: float | torch.Tensor, channel_dim: int = -1
) -> np.ndarray | torch.Tensor:
    """Unit view-space normals (``... h w 3``; OpenGL camera axes: x right, y up, +z toward the camera)
    from depth along the camera axis (``... h w``, any positive scale; larger = farther).

    Each pixel is back-projected with square pixels and the principal point at the image centre;
    the normal is the cross product of the central-difference tangents, oriented toward the camera.
    Returns the same array type it was given. ``channel_dim=-3`` gives ``... 3 h w`` instead.
    ``fov_y_deg`` may be a tensor of the leading dimensions' first ones (``b`` for ``b t h w``):
    a field of view per item (videos from different cameras in one batch)."""
    as_numpy = isinstance(depth, np.ndarray)
    z = torch.from_numpy(np.ascontiguousarray(depth)) if as_numpy else depth
    z = z.float()
    h, w = z.shape[-2:]
    if isinstance(fov_y_deg, torch.Tensor):  # one per leading item (b, or b t): ... 1 1
        fov = fov_y_deg.to(device=z.device, dtype=z.dtype)
        fov = fov.reshape(*fov.shape, *([1] * (z.ndim - fov.ndim)))
        focal = (h / 2) / torch.tan(torch.deg2rad(fov) / 2)
    else:
        focal = (h / 2) / math.tan(math.radians(fov_y_deg) / 2)
    xs = (torch.arange(w, dtype=z.dtype, device=z.device) + 0.5 - w / 2) / focal  # w (or ... 1 w)
    ys = -(torch.arange(h, dtype=z.dtype, device=z.device)[:, None] + 0.5 - h / 2) / focal  # h 1
    px, py, pz = z * xs, z * ys, -z  # ... h w each

    def diff_x(a: torch.Tensor) -> torch.Tensor:
        padded = torch.cat([a[..., :, :1], a, a[..., :, -1:]], dim=-1)
        return padded[..., :, 2:] - padded[..., :, :-2]

    def diff_y(a: torch.Tensor) -> torch.Tensor:
        padded = torch.cat([a[..., :1, :], a, a[..., -1:, :]], dim=-2)
        return padded[..., 2:, :] - padded[..., :-2, :]

    ax, ay, az = diff_x(px), diff_x(py), diff_x(pz)  # tangent along +x (image right)
    bx, by, bz = diff_y(px), diff_y(py), diff_y(pz)  # tangent along +v (image down)
    # n = b x a points toward the camera for a fronto-parallel plane
    nx = by * az - bz * ay
    ny = bz * ax - bx * az
    nz = bx * ay - by * ax
    inv_length = (nx * nx + ny * ny + nz * nz).clamp_min(1e-24).rsqrt()
    normals = torch.stack([nx * inv_length, ny * inv_length, nz * inv_length], dim=channel_dim)
    return normals.numpy() if as_numpy else normals
