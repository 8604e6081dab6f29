"""Game G-buffer clips rendered on the fly, for objectives that train on game rides.

The game is an unlimited source of exact G-buffers (flow and depth are exact, not extracted), so
distillation and student objectives draw part of every batch from it: the discriminator of an
adversarial realism loss sees the generator's frames on game conditions, and temporal losses use
the game's exact motion. Clip ``index`` is a pure function of ``(seed, index)`` -- a world seed
and a starting offset are drawn from them -- so a resumed run sees the same clips.

One ``GameSession`` (and its headless EGL context) is kept per ``GameClips`` object and reset
for each clip; the world is stepped without rendering up to the clip's start. Conditions go
through the same ``encode`` as play with the run's spec and statistics.
"""

from __future__ import annotations

import numpy as np
import torch

from src.common.frames import frames_from_uint8
from src.conditions.align import encode_game_frame, make_aligner
from src.conditions.encode import ConditionStats
from src.conditions.spec import ConditionSpec
from src.conditions.warp import depth_test_mask, warp_error_mask
from src.game.config import DEFAULT_LEVEL, PlayConfig
from src.game.session import GameSession, load_level


class GameClips:
    """``clip(index)`` -> cond t C h w, raster t 3 h w in [-1, 1], flow_px t h w 2, depth_m t h w,
    valid_mask t h w (pixels whose motion can be followed from the frame before: not at motion
    boundaries or disocclusions; frame 0 and restarts are 0)."""

    def __init__(
        self,
        *,
        width: int,
        height: int,
        frames: int,
        fps: float,
        spec: ConditionSpec,
        stats: ConditionStats,
        seed: int = 0,
        max_offset_frames: int = 120,
        level: str | None = None,
    ):
        self.width, self.height, self.frames, self.fps = width, height, frames, fps
        self.spec, self.stats, self.seed = spec, stats, seed
        self.max_offset_frames = max_offset_frames
        self.level = level or DEFAULT_LEVEL  # a level file's world (the default street's file)
        self._session = None

    @classmethod
    def for_run(cls, config, data, *, seed: int, size: tuple[int, int] | None = None) -> GameClips:
        """Clips like the run's training clips: its clip length, fps, spec and statistics, at
        ``size`` (height, width; default the dataset's frame size)."""
        height, width = size or data.frame_hw
        return cls(
            width=width,
            height=height,
            frames=config.data.clip_frames,
            fps=data.fps,
            spec=data.spec,
            stats=data.stats,
            seed=seed,
            level=config.data.game_level,
        )

    def _game(self):
        if self._session is None:
            self._session = GameSession(
                PlayConfig(
                    renderer="raster",
                    headless=True,
                    autopilot=True,
                    seed=self.seed,
                    resolution=f"{self.width}x{self.height}",
                    fps=self.fps,
                    level=self.level,
                    world=load_level(self.level),
                )
            )
        return self._session

    def clip(self, index: int) -> dict[str, torch.Tensor]:
        session = self._game()
        rng = np.random.default_rng([self.seed, index])
        session.world.reset(int(rng.integers(1 << 30)))
        session.autopilot.reset()
        for _ in range(int(rng.integers(0, self.max_offset_frames + 1))):  # ride to the clip's start
            session.world.step(session.autopilot(session.world), session.dt)
            if session.world.game_over:
                session.world.reset(int(rng.integers(1 << 30)))
                session.autopilot.reset()
        session._new_run, session._prev_pose = True, None
        conds, colors, flows, depths, restarts = [], [], [], [], []
        aligner = make_aligner(self.spec)  # the spec's game-side transforms, as in play
        for _ in range(self.frames):
            gbuffer, info, _ = session.frame(None)
            if session.world.game_over:
                session.restart()
            conds.append(
                encode_game_frame(
                    gbuffer,
                    aligner,
                    spec=self.spec,
                    stats=self.stats,
                    fov_y_deg=session.config.camera.fov_y_deg,
                    new_run=bool(info.new_run),
                )
            )
            colors.append(torch.from_numpy(gbuffer.color.copy()))
            flows.append(torch.from_numpy(gbuffer.flow.astype(np.float32)))
            depths.append(torch.from_numpy(gbuffer.depth.astype(np.float32)))
            restarts.append(bool(info.new_run))
        flow = torch.stack(flows)
        depth = torch.stack(depths)
        valid = warp_error_mask(flow) * depth_test_mask(depth, flow)
        valid[torch.tensor(restarts)] = 0
        return {
            "cond": torch.stack(conds),
            "raster": frames_from_uint8(torch.stack(colors)).contiguous(),
            "flow_px": flow,
            "depth_m": depth,
            "valid_mask": valid,
        }

    def batch(self, index: int, batch_size: int) -> dict[str, torch.Tensor]:
        """Clips ``index * batch_size ...`` stacked: every value gets a leading ``b`` axis."""
        clips = [self.clip(index * batch_size + i) for i in range(batch_size)]
        return {key: torch.stack([c[key] for c in clips]) for key in clips[0]}

    def close(self) -> None:
        if self._session is not None:
            self._session.release()
            self._session = None
