"""Depth from motion parallax (src/conditions/parallax_depth.py): the camera's motion recovered
from an exact flow field, a nearer box standing out of the ground, and the prior alone where the
camera does not move."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from src.conditions.config import ExtractConfig
from src.conditions.depth import GeometricDepth
from src.conditions.extract import Extractor
from src.conditions.parallax_depth import ParallaxDepth, fit_motion, rotational_basis

H, W, FOV = 72, 96, 60.0
FOCAL = (H / 2) / np.tan(np.radians(FOV) / 2)


def scene():
    """Inverse depth of a road below the horizon, a far wall above it, and a box nearer than
    both on the left; a frame whose grey levels follow the same regions (for the guided filter)."""
    rows = (np.arange(H) + 0.5)[:, None] * np.ones((1, W))
    inverse = np.where(rows > 0.45 * H, 0.02 + 0.5 * (rows - 0.45 * H) / H, 0.02)
    box = (slice(20, 44), slice(8, 30))
    inverse[box] = 0.4
    frame = np.full((H, W, 3), 90, np.uint8)
    frame[rows > 0.45 * H] = 60
    frame[box] = 200
    return inverse.astype(np.float32), frame, box


def motion_flow(inverse, *, foe, rotation, speed=0.25):
    """The exact flow in pixels of a camera moving forward (FOE ``foe``, normalised) and turning by
    ``rotation``, over a scene of ``inverse`` depth."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    x, y = (xx + 0.5 - W / 2) / FOCAL, (yy + 0.5 - H / 2) / FOCAL
    bu, bv = rotational_basis(x.ravel(), y.ravel())
    u = speed * inverse * (x - foe[0]) + (bu @ rotation).reshape(H, W)
    v = speed * inverse * (y - foe[1]) + (bv @ rotation).reshape(H, W)
    return np.stack([u, v], axis=-1) * FOCAL, x, y


def test_the_camera_motion_is_recovered_from_an_exact_flow():
    inverse, _, _ = scene()
    foe, rotation = np.array([0.1, -0.05]), np.array([0.002, -0.004, 0.001])
    flow, x, y = motion_flow(inverse, foe=foe, rotation=rotation)
    found_foe, found_rotation, residual = fit_motion(
        x.ravel(), y.ravel(), flow[..., 0].ravel() / FOCAL, flow[..., 1].ravel() / FOCAL
    )
    assert np.abs(found_foe - foe).max() < 0.03  # within the fine grid's step
    assert np.abs(found_rotation - rotation).max() * FOCAL < 0.05  # pixels of flow; the largest is 5 px
    assert residual < 1e-3


def test_a_nearer_box_stands_out_of_the_ground_where_the_prior_sees_none():
    inverse, frame, box = scene()
    flow, _, _ = motion_flow(inverse, foe=np.array([0.05, 0.0]), rotation=np.array([0.0, 0.003, 0.0]))
    depth = ParallaxDepth(fov_y_deg=FOV)
    estimate = depth.frame(frame, flow)
    prior = GeometricDepth(guided_radius_fraction=0.03).frame(frame)
    assert depth.last_fit is not None
    truth_rank = spearmanr(estimate.ravel(), inverse.ravel())[0]
    prior_rank = spearmanr(prior.ravel(), inverse.ravel())[0]
    assert truth_rank > prior_rank + 0.1, (truth_rank, prior_rank)
    beside = (box[0], slice(box[1].stop + 6, box[1].stop + 20))  # the far wall right of the box
    assert np.median(estimate[box]) > 2 * np.median(estimate[beside])


def test_a_still_camera_gets_the_prior_alone():
    _, frame, _ = scene()
    depth = ParallaxDepth(fov_y_deg=FOV)
    still = depth.frame(frame, np.zeros((H, W, 2), np.float32))
    assert depth.last_fit is None
    np.testing.assert_allclose(still, GeometricDepth(guided_radius_fraction=0.03).frame(frame), rtol=1e-5)
    np.testing.assert_allclose(depth.frame(frame, None), still)


def test_the_extractor_builds_it_by_name():
    extractor = Extractor(ExtractConfig(depth_backend="parallax", assumed_fov_y_deg=50.0))
    assert isinstance(extractor.depth, ParallaxDepth) and extractor.depth.fov_y_deg == 50.0
    assert extractor.settings()["depth"]["name"] == "parallax"
    with pytest.raises(Exception, match="parallax"):
        ExtractConfig(depth_backend="stereo").__post_init__()


def test_eval_extractors_scores_depth_against_a_sidecar(tmp_path):
    from src.bench.extractors import evaluate_lidar_video, format_table
    from src.common.errors import UserError
    from tests.test_depth_sidecar import _save, _sidecar_arrays, _video

    video = _video(tmp_path)
    _save(video, _sidecar_arrays())
    result = evaluate_lidar_video(video, ExtractConfig(), resolution="32x24", frames=6, fps=10.0)
    assert result["frames"] == 6 and result["median_flow_px"] >= 0
    assert -1 <= result["depth_spearman"] <= 1 and -1 <= result["depth_spearman_row_prior_only"] <= 1
    table = format_table({"game": [], "aloe": {"depth_spearman": 0.5, "depth_spearman_row_prior_only": 0.4},
                          "lidar": [result]})  # fmt: skip
    assert "ride.mp4 (LiDAR sidecar): depth Spearman" in table
    (tmp_path / "ride.depth.npz").unlink()
    with pytest.raises(UserError, match="no depth sidecar"):
        evaluate_lidar_video(video, ExtractConfig(), resolution="32x24", frames=6, fps=10.0)
