"""The game world: an endless city street, its traffic and the rider (numpy only).

Coordinates: ``x_m`` is across the road (metres, +x to the rider's right, 0 on the centre
line), ``s_m`` is the distance along the road (world ``z = -s``). Traffic drives on the
right: lanes with ``x > 0`` go the rider's way (``+s``), lanes with ``x < 0`` come toward it.

Everything is deterministic for a seed and a sequence of ``(action, dt)``: the traffic
draws from one seeded ``numpy.random.Generator`` and each side of the street from its own.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from src.game.city import Building, next_building
from src.game.config import WorldConfig
from src.game.palette import city_palette
from src.game.traffic import TAXI_COLOUR, VEHICLE_SIZES_M, Vehicle


@dataclasses.dataclass(frozen=True)
class Action:
    """One control input: ``steer`` in [-1, 1] (+ = right), ``throttle`` in [-1, 1] (+ pedal, - brake)."""

    steer: float = 0.0
    throttle: float = 0.0


@dataclasses.dataclass(frozen=True)
class WorldState:
    """What the camera, the HUD and the autopilot read; a snapshot of the world."""

    time_s: float
    x_m: float
    s_m: float
    speed_mps: float
    cruise_speed_mps: float
    lateral_speed_mps: float
    lean_rad: float
    pedal_phase_rad: float
    crashing: bool
    game_over: bool
    score_m: float
    crash_drop_m: float
    crash_roll_rad: float
    crash_pitch_rad: float


class World:
    """The simulation. ``step(action, dt)`` advances it; ``state()`` is a snapshot."""

    def __init__(self, config: WorldConfig | None = None, *, seed: int = 0):
        self.config = config or WorldConfig()
        self.reset(seed)

    # ---------------------------------------------------------------- setup
    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.seed = int(seed)
        c = self.config
        self.rng = np.random.default_rng([self.seed, 0])
        self._city_rngs = {side: np.random.default_rng([self.seed, 1, side + 1]) for side in (-1, 1)}
        self.time_s = 0.0
        self.x_m = self.lane_centre_m(max(1, min(c.start_lane, c.lanes_per_direction)))
        self.s_m = 0.0
        self.start_s_m = 0.0
        self.speed_mps = c.start_speed_mps
        self.lateral_speed_mps = 0.0
        self.lean_rad = 0.0
        self.pedal_phase_rad = 0.0
        self.crash_timer_s: float | None = None
        self.game_over = False
        self.crashed_into: Vehicle | None = None
        self.vehicles: list[Vehicle] = []
        self.buildings: list[Building] = []
        self.city_blocks: dict = {}  # block index -> its prebuilt static Scene (src/game/blocks.py)
        self._city_end_m = {-1: -c.keep_behind_m, 1: -c.keep_behind_m}
        self._extend_city()
        for _ in range(c.initial_vehicles * 4):
            if len(self.vehicles) >= c.initial_vehicles:
                break
            self._try_spawn(self.rng.uniform(c.safe_start_m, c.view_distance_m))

    @property
    def road_half_width_m(self) -> float:
        return self.config.lanes_per_direction * self.config.lane_width_m

    def lane_centre_m(self, lane: int) -> float:
        """Signed lane index (+1 nearest the centre line on the right) -> x of its centre."""
        return math.copysign((abs(lane) - 0.5) * self.config.lane_width_m, lane)

    @property
    def alive(self) -> bool:
        return self.crash_timer_s is None and not self.game_over

    @property
    def score_m(self) -> float:
        return self.s_m - self.start_s_m

    def cruise_speed_mps(self) -> float:
        c = self.config
        return min(c.start_speed_mps + c.speed_ramp_mps_per_s * self.time_s, c.max_cruise_speed_mps)

    def state(self) -> WorldState:
        crash_progress = 0.0
        if self.crash_timer_s is not None:
            crash_progress = 1.0 - self.crash_timer_s / self.config.crash_duration_s
        if self.game_over:
            crash_progress = 1.0
        ease = min(1.0, crash_progress * 1.5)
        return WorldState(
            time_s=self.time_s,
            x_m=self.x_m,
            s_m=self.s_m,
            speed_mps=self.speed_mps,
            cruise_speed_mps=self.cruise_speed_mps(),
            lateral_speed_mps=self.lateral_speed_mps,
            lean_rad=self.lean_rad,
            pedal_phase_rad=self.pedal_phase_rad,
            crashing=self.crash_timer_s is not None,
            game_over=self.game_over,
            score_m=self.score_m,
            crash_drop_m=0.9 * ease,
            crash_roll_rad=0.9 * ease,
            crash_pitch_rad=0.35 * ease,
        )

    # ---------------------------------------------------------------- stepping
    def step(self, action: Action, dt: float) -> WorldState:
        """Advance the world by ``dt`` seconds under ``action``; a no-op once the run is over."""
        if self.game_over:
            for vehicle in self.vehicles:
                vehicle.prev_s_m, vehicle.prev_x_m = vehicle.s_m, vehicle.x_m
            return self.state()
        c = self.config
        self.time_s += dt
        steer = float(np.clip(action.steer, -1.0, 1.0))
        throttle = float(np.clip(action.throttle, -1.0, 1.0))
        if self.crash_timer_s is not None:  # the crash: slide to a stop, no control
            steer, throttle = 0.0, 0.0
            self.speed_mps = max(0.0, self.speed_mps - 3.0 * c.braking_mps2 * dt)
            self.crash_timer_s -= dt
            if self.crash_timer_s <= 0.0:
                self.crash_timer_s = None
                self.game_over = True
        else:
            cruise = self.cruise_speed_mps()
            gain = c.pedal_speed_gain if throttle >= 0 else c.brake_speed_gain
            target = cruise * (1.0 + gain * throttle)
            if target > self.speed_mps:
                self.speed_mps = min(target, self.speed_mps + c.acceleration_mps2 * dt)
            else:
                rate = c.braking_mps2 if throttle < 0 else c.acceleration_mps2
                self.speed_mps = max(target, self.speed_mps - rate * dt)
        # steering with inertia: lateral speed relaxes toward the commanded one
        blend = 1.0 - math.exp(-dt / c.lateral_response_s)
        self.lateral_speed_mps += (steer * c.max_lateral_speed_mps - self.lateral_speed_mps) * blend
        self.lateral_speed_mps *= min(1.0, self.speed_mps / 2.0)  # no sideways slide when stopped
        self.x_m += self.lateral_speed_mps * dt
        limit = self.road_half_width_m - c.bike_width_m / 2.0
        if abs(self.x_m) > limit:  # the curb stops the bicycle
            self.x_m = math.copysign(limit, self.x_m)
            self.lateral_speed_mps = 0.0
        self.lean_rad += (c.lean_rad_per_mps * self.lateral_speed_mps - self.lean_rad) * blend
        self.s_m += self.speed_mps * dt
        self.pedal_phase_rad = (self.pedal_phase_rad + self.speed_mps * dt / 0.9) % (2.0 * math.pi)

        self._step_traffic(dt)
        if self.crash_timer_s is None and not self.game_over:
            hit = self._collision()
            if hit is not None:
                self.crashed_into = hit
                self.crash_timer_s = c.crash_duration_s
        self._extend_city()
        return self.state()

    def _step_traffic(self, dt: float) -> None:
        c = self.config
        for vehicle in self.vehicles:
            vehicle.prev_s_m, vehicle.prev_x_m = vehicle.s_m, vehicle.x_m
        # simple car following: never close in on the vehicle ahead in the same lane
        by_lane: dict[int, list[Vehicle]] = {}
        for vehicle in self.vehicles:
            by_lane.setdefault(vehicle.lane, []).append(vehicle)
        for lane, vehicles in by_lane.items():
            direction = 1 if lane > 0 else -1
            vehicles.sort(key=lambda v: v.s_m * direction, reverse=True)  # leader first
            for leader, follower in zip(vehicles, vehicles[1:]):
                gap = abs(leader.s_m - follower.s_m) - (leader.length_m + follower.length_m) / 2
                if gap < c.min_vehicle_gap_m + follower.speed_mps:
                    follower.speed_mps = min(follower.desired_speed_mps, leader.speed_mps * 0.95)
                else:
                    follower.speed_mps = follower.desired_speed_mps
            vehicles[0].speed_mps = vehicles[0].desired_speed_mps
        for vehicle in self.vehicles:
            vehicle.s_m += vehicle.direction * vehicle.speed_mps * dt
        behind, ahead = self.s_m - c.keep_behind_m, self.s_m + c.view_distance_m + 60.0
        self.vehicles = [v for v in self.vehicles if behind < v.s_m < ahead]
        if len(self.vehicles) < c.max_vehicles and self.rng.random() < c.spawn_rate_per_s * dt:
            self._try_spawn(self.s_m + self.rng.uniform(0.6, 1.0) * c.view_distance_m)

    def _try_spawn(self, s_m: float) -> bool:
        c = self.config
        lane = int(self.rng.integers(1, c.lanes_per_direction + 1)) * (1 if self.rng.random() < 0.55 else -1)
        u = self.rng.random()
        kind = "car" if u < c.car_share else "taxi" if u < c.car_share + c.taxi_share else "bus"
        low, high = c.same_direction_speed_range_mps if lane > 0 else c.oncoming_speed_range_mps
        speed = float(self.rng.uniform(low, high)) * (0.8 if kind == "bus" else 1.0)
        if kind == "taxi":  # a taxi is yellow; cars and buses: the measured palette (game/city_palette.yaml)
            colour = TAXI_COLOUR
        else:
            colour = tuple(float(v) for v in city_palette().draw("vehicle", self.rng, 1)[0])
        jitter = float(self.rng.uniform(-c.lane_jitter_m, c.lane_jitter_m))
        length = VEHICLE_SIZES_M[kind][0]
        for other in self.vehicles:
            if (
                other.lane == lane
                and abs(other.s_m - s_m) < (other.length_m + length) / 2 + 3 * c.min_vehicle_gap_m
            ):
                return False
        x = self.lane_centre_m(lane) + jitter
        self.vehicles.append(
            Vehicle(kind, lane, x, float(s_m), speed, speed, colour, prev_s_m=float(s_m), prev_x_m=x)
        )
        return True

    def _collision(self) -> Vehicle | None:
        c = self.config
        for vehicle in self.vehicles:
            if (
                abs(vehicle.x_m - self.x_m) < (vehicle.width_m + c.bike_width_m) / 2
                and abs(vehicle.s_m - self.s_m) < (vehicle.length_m + c.bike_length_m) / 2
            ):
                return vehicle
        return None

    # ---------------------------------------------------------------- the city
    def _extend_city(self) -> None:
        c = self.config
        horizon = self.s_m + c.view_distance_m
        for side in (-1, 1):
            rng = self._city_rngs[side]
            while self._city_end_m[side] < horizon:
                building = next_building(rng, c, side, self._city_end_m[side])
                self.buildings.append(building)
                self._city_end_m[side] = building.s_start_m + building.width_m
        behind = self.s_m - c.keep_behind_m
        self.buildings = [b for b in self.buildings if b.s_start_m + b.width_m > behind]
