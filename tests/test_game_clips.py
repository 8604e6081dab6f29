"""Game clips rendered on the fly for training: deterministic per index, exact motion, encoded
like play."""

from __future__ import annotations

import torch

from src.conditions.encode import ConditionStats
from src.conditions.spec import ConditionSpec
from src.conditions.warp import backward_warp
from src.game.config import WorldConfig
from src.game.session import load_level
from src.train.game_clips import GameClips


def test_clips_are_a_function_of_the_index_and_their_flow_warps_the_raster():
    clips = GameClips(
        width=96, height=64, frames=5, fps=10, spec=ConditionSpec(), stats=ConditionStats(), seed=3
    )
    try:
        a, b, again = clips.clip(0), clips.clip(1), clips.clip(0)
        batch = clips.batch(0, 2)
    finally:
        clips.close()
    assert a["cond"].shape == (5, 9, 64, 96) and a["raster"].shape == (5, 3, 64, 96)
    assert all(torch.equal(a[k], again[k]) for k in a)
    assert not torch.equal(a["raster"], b["raster"])
    assert torch.equal(batch["cond"][1], b["cond"])
    assert a["flow_px"][1:].abs().mean() > 0.05  # the rider moves from the first frame on

    # the flow follows the game's convention (x_t - x_{t-1} at pixels of t): frame t-1 moved along
    # it is closer to frame t than moved along the flow with either axis reversed
    def error(flow):
        return (backward_warp(b["raster"][:-1], flow) - b["raster"][1:]).abs().mean()

    flow = b["flow_px"][1:]
    for flip in ([-1.0, 1.0], [1.0, -1.0]):
        assert error(flow) < error(flow * torch.tensor(flip))
    assert (a["valid_mask"][0] == 0).all() and a["valid_mask"][1:].mean() > 0.5


def test_clips_ride_the_level_they_are_given():
    def clips(level=None):
        return GameClips(
            width=48, height=32, frames=2, fps=10, spec=ConditionSpec(), stats=ConditionStats(), level=level
        )

    default, boulevard = clips(), clips("game/levels/boulevard.yaml")
    try:
        assert default._game().world.config == WorldConfig()
        assert boulevard._game().world.config == load_level("game/levels/boulevard.yaml")
        assert boulevard._game().world.config.lanes_per_direction == 3 != WorldConfig().lanes_per_direction
        assert not torch.equal(default.clip(0)["cond"], boulevard.clip(0)["cond"])
    finally:
        default.close()
        boulevard.close()
