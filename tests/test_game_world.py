"""The world simulation: determinism, collisions, the autopilot, levels (no rendering)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from src.common.errors import UserError
from src.game.autopilot import Autopilot
from src.game.config import DEFAULT_LEVEL, WorldConfig
from src.game.session import load_level
from src.game.world import Action, Vehicle, World


def _random_actions(seed: int, count: int) -> list[Action]:
    rng = np.random.default_rng(seed)
    return [Action(float(s), float(t)) for s, t in rng.uniform(-1, 1, size=(count, 2))]


def _snapshot(world: World) -> tuple:
    vehicles = tuple((v.kind, v.lane, v.x_m, v.s_m, v.speed_mps) for v in world.vehicles)
    buildings = tuple(dataclasses.astuple(b) for b in world.buildings)
    return dataclasses.astuple(world.state()), vehicles, buildings


def test_same_seed_and_actions_give_the_same_world():
    actions = _random_actions(7, 300)
    runs = []
    for _ in range(2):
        world = World(WorldConfig(), seed=11)
        runs.append([_snapshot(world) for action in actions if world.step(action, 1 / 30) is not None])
    assert runs[0] == runs[1]
    other = World(WorldConfig(), seed=12)
    assert _snapshot(other) != runs[0][0]


def test_traffic_spawns_ahead_moves_both_ways_and_despawns_behind():
    world = World(WorldConfig(), seed=3)
    assert all(v.s_m - world.s_m >= world.config.safe_start_m for v in world.vehicles)
    seen_lanes = set()
    for _ in range(900):
        before = {id(v): v.s_m for v in world.vehicles}
        world.step(Action(), 1 / 30)
        for v in world.vehicles:
            seen_lanes.add(np.sign(v.lane))
            if id(v) in before:
                assert np.sign(v.s_m - before[id(v)]) in (0, v.direction)
        assert all(v.s_m > world.s_m - world.config.keep_behind_m for v in world.vehicles)
        if not world.alive:
            break
    assert seen_lanes == {-1, 1}
    assert world.buildings and min(b.s_start_m for b in world.buildings) > -world.config.keep_behind_m - 40


def test_world_speed_rises_over_time():
    world = World(WorldConfig(), seed=0)
    world.vehicles.clear()
    world.config.spawn_rate_per_s = 0.0
    first = world.cruise_speed_mps()
    for _ in range(30 * 60):
        world.step(Action(), 1 / 30)
    assert world.cruise_speed_mps() > first + 1.0
    assert world.speed_mps == pytest.approx(world.cruise_speed_mps(), rel=0.05)


def test_steering_has_inertia_and_the_curb_stops_the_bike():
    world = World(WorldConfig(), seed=0)
    world.vehicles.clear()
    world.config.spawn_rate_per_s = 0.0
    x0 = world.x_m
    world.step(Action(steer=1.0), 1 / 30)
    assert 0 < world.lateral_speed_mps < 0.5 * world.config.max_lateral_speed_mps
    for _ in range(300):
        world.step(Action(steer=1.0), 1 / 30)
    assert world.x_m > x0
    assert world.x_m == pytest.approx(world.road_half_width_m - world.config.bike_width_m / 2)


def test_hitting_a_vehicle_crashes_and_ends_the_run():
    config = WorldConfig(spawn_rate_per_s=0.0)
    world = World(config, seed=0)
    world.vehicles = [
        Vehicle(
            "car",
            2,
            world.x_m,
            world.s_m + 8.0,
            0.0,
            0.0,
            (1, 0, 0),
            prev_s_m=world.s_m + 8.0,
            prev_x_m=world.x_m,
        )
    ]
    steps = 0
    while world.alive and steps < 300:
        world.step(Action(), 1 / 30)
        steps += 1
    assert world.crashed_into is world.vehicles[0]
    assert world.state().crashing and not world.game_over
    score = world.score_m
    for _ in range(int(config.crash_duration_s * 30) + 2):
        world.step(Action(throttle=1.0), 1 / 30)
    assert world.game_over
    time_s = world.time_s
    world.step(Action(throttle=1.0), 1 / 30)
    assert world.time_s == time_s and world.score_m >= score


def test_the_autopilot_survives_sixty_seconds():
    world = World(load_level(DEFAULT_LEVEL), seed=0)
    pilot = Autopilot()
    for _ in range(60 * 30):
        world.step(pilot(world), 1 / 30)
        assert world.alive, f"crashed at {world.time_s:.1f} s into a {world.crashed_into.kind}"
    assert world.score_m > 400


def test_the_default_level_loads_and_a_missing_level_is_a_user_error(tmp_path):
    config = load_level(DEFAULT_LEVEL)
    # rides recorded in code (evaluation, training's game clips) use WorldConfig's defaults, and
    # play_game the default level: they are the same street
    assert config == WorldConfig()
    for level in Path("game/levels").glob("*.yaml"):
        assert isinstance(load_level(level), WorldConfig)
    with pytest.raises(UserError, match="level file not found"):
        load_level(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lanes_per_directon: 3\n")
    with pytest.raises(UserError, match="lanes_per_directon"):
        load_level(bad)
