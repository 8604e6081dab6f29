"""The rider camera: intrinsics, poses and the matrices the renderer and the tests share.

Conventions (OpenGL): world x right, y up, the road runs along -z (distance ``s`` maps to
``z = -s``). The camera looks down its own -z with +y up. Pixel coordinates put the
centre of pixel (column i, row j) at ``(i + 0.5, j + 0.5)``, x right, y down, so

    x_px = cx + fx * x_view / (-z_view)      y_px = cy - fy * y_view / (-z_view)

with ``fx = fy = (height / 2) / tan(fov_y / 2)``, ``cx = width / 2``, ``cy = height / 2``.
All matrices are float64 (the road is long; products are cast to float32 only at upload).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from src.game.config import CameraConfig


@dataclasses.dataclass(frozen=True)
class Intrinsics:
    """What is needed to project and reproject: image size, vertical FOV, clip planes."""

    width: int
    height: int
    fov_y_deg: float
    near_m: float
    far_m: float

    @property
    def fy(self) -> float:
        return (self.height / 2.0) / math.tan(math.radians(self.fov_y_deg) / 2.0)

    @property
    def fx(self) -> float:
        return self.fy  # square pixels

    @property
    def cx(self) -> float:
        return self.width / 2.0

    @property
    def cy(self) -> float:
        return self.height / 2.0

    def projection_matrix(self) -> np.ndarray:
        return perspective(self.fov_y_deg, self.width / self.height, self.near_m, self.far_m)


@dataclasses.dataclass(frozen=True)
class CameraPose:
    """Camera position in world metres and yaw/pitch/roll in radians (yaw > 0 turns left)."""

    position: tuple[float, float, float]
    yaw_rad: float = 0.0
    pitch_rad: float = 0.0
    roll_rad: float = 0.0

    def camera_to_world(self) -> np.ndarray:
        matrix = np.eye(4)
        matrix[:3, :3] = rotation_y(self.yaw_rad) @ rotation_x(self.pitch_rad) @ rotation_z(self.roll_rad)
        matrix[:3, 3] = self.position
        return matrix

    def view_matrix(self) -> np.ndarray:
        """World to view (camera) space."""
        return rigid_inverse(self.camera_to_world())


def perspective(fov_y_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    """The standard OpenGL perspective matrix (clip z in [-w, w])."""
    f = 1.0 / math.tan(math.radians(fov_y_deg) / 2.0)
    matrix = np.zeros((4, 4))
    matrix[0, 0] = f / aspect
    matrix[1, 1] = f
    matrix[2, 2] = (far + near) / (near - far)
    matrix[2, 3] = 2.0 * far * near / (near - far)
    matrix[3, 2] = -1.0
    return matrix


def rotation_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def rotation_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def rotation_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


def rigid_inverse(matrix: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    rotation = matrix[:3, :3]
    out[:3, :3] = rotation.T
    out[:3, 3] = -rotation.T @ matrix[:3, 3]
    return out


def project_points(
    points_world: np.ndarray, view: np.ndarray, intrinsics: Intrinsics
) -> tuple[np.ndarray, np.ndarray]:
    """World points (n 3) -> pixel coordinates (n 2, x right, y down) and axis depth in metres (n)."""
    points = np.asarray(points_world, dtype=np.float64)
    view_points = points @ view[:3, :3].T + view[:3, 3]
    depth = -view_points[:, 2]
    x = intrinsics.cx + intrinsics.fx * view_points[:, 0] / depth
    y = intrinsics.cy - intrinsics.fy * view_points[:, 1] / depth
    return np.stack([x, y], axis=-1), depth


def unproject_pixels(
    pixels: np.ndarray, depth_m: np.ndarray, view: np.ndarray, intrinsics: Intrinsics
) -> np.ndarray:
    """Pixel coordinates (n 2) and axis depth (n) -> world points (n 3); inverse of ``project_points``."""
    pixels = np.asarray(pixels, dtype=np.float64)
    depth = np.asarray(depth_m, dtype=np.float64)
    x_view = (pixels[:, 0] - intrinsics.cx) / intrinsics.fx * depth
    y_view = -(pixels[:, 1] - intrinsics.cy) / intrinsics.fy * depth
    view_points = np.stack([x_view, y_view, -depth], axis=-1)
    camera_to_world = rigid_inverse(view)
    return view_points @ camera_to_world[:3, :3].T + camera_to_world[:3, 3]


def rider_camera_pose(state, config: CameraConfig) -> CameraPose:
    """The camera on the rider's head for a world state (``World.state()``)."""
    bob = (
        config.head_bob_amplitude_m * math.sin(2.0 * state.pedal_phase_rad) * min(1.0, state.speed_mps / 4.0)
    )
    position = (state.x_m, config.eye_height_m + bob - state.crash_drop_m, -state.s_m)
    yaw = -math.radians(config.look_into_turn_deg_per_mps) * state.lateral_speed_mps
    roll = -config.lean_roll_fraction * state.lean_rad + state.crash_roll_rad
    pitch = math.radians(config.pitch_deg) - state.crash_pitch_rad
    return CameraPose(position=position, yaw_rad=yaw, pitch_rad=pitch, roll_rad=roll)
