"""Game-side condition transforms (src/conditions/align.py), the spec options that choose them and
channel dropout: each on a real clip or an analytic case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from src.common.errors import UserError
from src.conditions.align import GameConditionAligner, align_game_clip, needs_alignment
from src.conditions.augment import AugmentConfig, ConditionAugmenter
from src.conditions.depth import GeometricDepth
from src.conditions.spec import ConditionSpec

ROAD = Path("/work/shared/data/real_videos/highway_ride_udacity_part1.mp4")


@pytest.fixture(scope="module")
def road_frames() -> np.ndarray:
    """Three real road frames at 96x96 (the shared road clip, else the embedded bikes.mp4)."""
    from src.data.decode import DecodeConfig, decode_video
    from src.data.sources import find_embedded_file

    video = ROAD if ROAD.is_file() else find_embedded_file("bikes.mp4")
    return decode_video(video, DecodeConfig(fps=10, resolution="96x96", max_frames=3))


def _game_arrays(color: np.ndarray) -> dict[str, np.ndarray]:
    """Exact-channel stand-ins around real colour frames (``t h w 3``)."""
    t, h, w = color.shape[:3]
    return {
        "color": color,
        "albedo": np.full((t, h, w, 3), 128, np.uint8),
        "depth": np.tile(np.linspace(100, 2, h, dtype=np.float32)[:, None], (t, 1, w)),
        "flow": np.zeros((t, h, w, 2), np.float32),
        "normals": np.tile(np.array([0, 1, 0], np.float32), (t, h, w, 1)),
    }


def test_the_default_spec_keeps_the_exact_gbuffer(road_frames):
    arrays = _game_arrays(road_frames)
    assert not needs_alignment(ConditionSpec())
    out, kind = align_game_clip(arrays, ConditionSpec(), depth_kind="metric")
    assert out is arrays and kind == "metric"


def test_estimated_flow_finds_a_known_shift_of_a_real_frame(road_frames):
    frame = road_frames[0]
    shifted = np.roll(frame, 3, axis=1)  # the scene moves 3 px right: flow x = +3 at frame 2
    arrays = _game_arrays(np.stack([frame, shifted]))
    out, _ = align_game_clip(arrays, ConditionSpec(game_flow="estimated"))
    assert np.all(out["flow"][0] == 0)  # a ride's first frame has no previous frame, as a real clip's
    interior = out["flow"][1, 16:-16, 16:-16]
    assert abs(np.median(interior[..., 0]) - 3.0) < 0.5 and abs(np.median(interior[..., 1])) < 0.5


def test_estimated_depth_is_the_real_geometric_extractor(road_frames):
    arrays = _game_arrays(road_frames[:1])
    out, kind = align_game_clip(arrays, ConditionSpec(game_depth="estimated"))
    assert kind == "inverse_relative"
    expected = GeometricDepth()(road_frames[:1], np.zeros((1, 96, 96, 2), np.float32))
    np.testing.assert_allclose(out["depth"], expected, rtol=1e-6)
    # larger = nearer: the bottom of a road view is nearer than its top
    assert out["depth"][0, -5:].mean() > out["depth"][0, :5].mean()


def test_a_restart_resets_the_aligner(road_frames):
    arrays = _game_arrays(road_frames)
    arrays["new_run"] = np.array([1, 0, 1], np.uint8)
    out, _ = align_game_clip(arrays, ConditionSpec(game_flow="estimated"))
    assert np.all(out["flow"][2] == 0) and np.abs(out["flow"][1]).max() > 0


def test_the_raster_transforms_need_the_colour():
    arrays = _game_arrays(np.zeros((1, 8, 8, 3), np.uint8))
    del arrays["color"]
    with pytest.raises(ValueError, match="color"):
        GameConditionAligner(ConditionSpec(game_depth="estimated"))({k: v[0] for k, v in arrays.items()})


def test_spec_options_round_trip_and_old_packages_keep_todays_behaviour():
    spec = ConditionSpec(game_flow="estimated", game_depth="estimated")
    assert ConditionSpec.from_dict(spec.to_dict()) == spec
    old = ConditionSpec.from_dict(
        {"channels": ["albedo", "depth", "normals", "flow"], "normals_source": "depth"}
    )
    assert old == ConditionSpec() and not needs_alignment(old)
    with pytest.raises(UserError, match="game_flow"):
        ConditionSpec(game_flow="blurred")


def test_channel_dropout_zeroes_whole_groups_but_never_all():
    spec = ConditionSpec()
    cond = torch.rand(2, spec.num_channels, 16, 16) * 0.5 + 0.25  # values away from 0
    cond[:, spec.slices()["normals"]] = torch.tensor([0.6, 0.0, 0.8])[:, None, None]  # unit length
    quiet = dict.fromkeys(
        [f.name for f in AugmentConfig.__dataclass_fields__.values() if f.name.endswith("_probability")], 0.0
    )
    augmenter = ConditionAugmenter(AugmentConfig(**(quiet | {"channel_dropout_probability": 1.0})), spec)
    kept_counts = []
    for seed in range(8):
        out = augmenter(cond, np.random.default_rng(seed))
        blank = {name: torch.zeros_like(cond[:, s]) for name, s in spec.slices().items()}
        blank["normals"][:, 2] = 1.0  # dropped normals face the camera, so they stay unit length
        zeroed = [name for name, s in spec.slices().items() if torch.equal(out[:, s], blank[name])]
        kept = [name for name, s in spec.slices().items() if torch.equal(out[:, s], cond[:, s])]
        assert len(kept) == 1 and len(zeroed) == 3
        kept_counts.append(kept[0])
    assert len(set(kept_counts)) > 1  # the kept group is drawn, not fixed
    # off (the default): the clip is exactly what it was, and the other draws are unchanged
    plain = ConditionAugmenter(AugmentConfig(), spec)(cond, np.random.default_rng(0))
    with_zero = ConditionAugmenter(AugmentConfig(channel_dropout_probability=0.0), spec)(
        cond, np.random.default_rng(0)
    )
    assert torch.equal(plain, with_zero)


def test_encode_game_frame_is_encode_gbuffer_by_default_and_runs_the_transforms_when_asked(road_frames):
    from src.common.gbuffer import GBuffer
    from src.conditions.align import encode_game_frame, make_aligner
    from src.conditions.encode import ConditionStats, encode_gbuffer

    arrays = _game_arrays(road_frames)
    same = arrays | {"color": np.stack([road_frames[0]] * 3)}
    gbuffers = [GBuffer(**{k: v[t] for k, v in same.items()}) for t in range(2)]
    stats, spec = ConditionStats(), ConditionSpec()
    assert make_aligner(spec) is None
    plain = encode_game_frame(gbuffers[0], None, spec=spec, stats=stats)
    assert torch.equal(plain, encode_gbuffer(gbuffers[0], spec, stats))

    spec = ConditionSpec(game_flow="estimated")
    aligner = make_aligner(spec)
    first, second = (encode_game_frame(g, aligner, spec=spec, stats=stats) for g in gbuffers)
    flow = spec.slices()["flow"]
    assert torch.all(first[flow] == 0) and torch.all(second[flow] == 0)  # the same frame twice: no motion
    moved = GBuffer(**({k: v[1] for k, v in arrays.items()} | {"color": np.roll(road_frames[0], 3, axis=1)}))
    third = encode_game_frame(moved, aligner, spec=spec, stats=stats)
    assert third[flow][0, 16:-16, 16:-16].median() > 0.3  # the DIS flow of a 3 px shift, encoded
    restarted = encode_game_frame(moved, aligner, spec=spec, stats=stats, new_run=True)
    assert torch.all(restarted[flow] == 0)
