"""A rider that plays by itself: picks the lateral position with the most time before it would
reach a vehicle, steers there with a little anticipation, and brakes when boxed in.

It reads the world directly (positions and speeds), so it is for recordings, datasets and
benchmarks, not a vision policy.
"""

from __future__ import annotations

import numpy as np

from src.game.config import AutopilotConfig
from src.game.world import Action, World


class Autopilot:
    """``autopilot(world) -> Action``; deterministic (no randomness of its own)."""

    def __init__(self, config: AutopilotConfig | None = None):
        self.config = config or AutopilotConfig()
        self.target_x_m: float | None = None

    def reset(self) -> None:
        self.target_x_m = None

    def candidates(self, world: World) -> np.ndarray:
        c = world.config
        limit = world.road_half_width_m - c.bike_width_m / 2 - 0.05
        lanes = [
            world.lane_centre_m(sign * k) for k in range(1, c.lanes_per_direction + 1) for sign in (1, -1)
        ]
        edges = [sign * k * c.lane_width_m for k in range(0, c.lanes_per_direction) for sign in (1, -1)]
        return np.clip(np.array(lanes + edges + [limit, -limit], float), -limit, limit)

    def time_clear(self, world: World, x_m: float) -> float:
        """Seconds until the rider, riding straight at ``x_m``, would reach a vehicle (capped)."""
        cfg, c = self.config, world.config
        best = cfg.lookahead_s
        for vehicle in world.vehicles:
            if abs(vehicle.x_m - x_m) > (vehicle.width_m + c.bike_width_m) / 2 + cfg.side_margin_m:
                continue
            gap = (vehicle.s_m - world.s_m) - (vehicle.length_m + c.bike_length_m) / 2
            closing = world.speed_mps - vehicle.direction * vehicle.speed_mps
            if gap < -c.bike_length_m:  # already behind the rider
                continue
            if gap <= 0:
                return 0.0
            if closing > 0.05:
                best = min(best, gap / closing)
        return best

    def path_blocked(self, world: World, from_x: float, to_x: float) -> bool:
        """Is a vehicle beside the rider between the current and the target line?"""
        c = world.config
        low, high = min(from_x, to_x), max(from_x, to_x)
        for vehicle in world.vehicles:
            near = abs(vehicle.s_m - world.s_m) < (vehicle.length_m + c.bike_length_m) / 2 + 2.0
            half = vehicle.width_m / 2 + c.bike_width_m / 2 + 0.2
            if near and vehicle.x_m + half > low and vehicle.x_m - half < high:
                return True
        return False

    def __call__(self, world: World) -> Action:
        cfg = self.config
        if self.target_x_m is None:
            self.target_x_m = world.x_m
        scores = []
        for x in self.candidates(world):
            if abs(x - world.x_m) > 0.3 and self.path_blocked(world, world.x_m, x):
                continue
            score = self.time_clear(world, x) - (cfg.oncoming_penalty_s if x < 0 else 0.0)
            score -= 0.15 * abs(x - world.x_m)  # shorter moves are safer
            if abs(x - self.target_x_m) < 0.3:
                score += cfg.switch_bonus_s
            scores.append((score, -abs(x - world.x_m), x))
        if scores:
            self.target_x_m = float(max(scores)[2])
        error = self.target_x_m - world.x_m
        # aim with the lateral velocity in mind (the steering has inertia)
        steer = cfg.steer_gain_per_m * error - 0.25 * world.lateral_speed_mps
        clear = self.time_clear(world, world.x_m)
        throttle = 0.3
        if clear < cfg.brake_below_s:
            throttle = -1.0
        elif clear < 2 * cfg.brake_below_s:
            throttle = 0.0
        return Action(steer=float(np.clip(steer, -1, 1)), throttle=throttle)
