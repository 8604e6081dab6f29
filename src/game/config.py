"""The game's settings, apart from the code that runs it: the rider camera, the world, the
autopilot and a play session (``PlayConfig``; ``game/levels/*.yaml`` set the world's). No
OpenGL, window or torch is imported here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from src.common.errors import UserError


@dataclasses.dataclass
class CameraConfig:
    """The first-person rider camera."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "fov_y_deg": "(0, 180)",
        "near_m": "(0, inf)",
        "far_m": "(0, inf)",
        "eye_height_m": "(0, inf)",
        "pitch_deg": "[-90, 90]",
        "head_bob_amplitude_m": "[0, inf)",
        "lean_roll_fraction": "[0, inf)",
        "look_into_turn_deg_per_mps": "(-inf, inf)",
    }
    ORDERED = (("near_m", "far_m"),)  # pairs whose first must be below the second (check_ranges)

    fov_y_deg: float = 70.0
    """vertical field of view in degrees"""
    near_m: float = 0.25
    """near clipping plane distance"""
    far_m: float = 600.0
    """far clipping plane distance"""
    eye_height_m: float = 1.6
    """eye height above the road"""
    pitch_deg: float = -4.0
    """camera pitch (negative: a little down toward the road)"""
    head_bob_amplitude_m: float = 0.025
    """vertical bob per pedal stroke"""
    lean_roll_fraction: float = 0.6
    """share of the bicycle's lean the head follows"""
    look_into_turn_deg_per_mps: float = 2.0
    """yaw toward the lateral velocity"""
    show_handlebar: bool = True
    """draw the bicycle's handlebar in view"""


@dataclasses.dataclass
class WorldConfig:
    """Every tunable of the world; ``game/levels/*.yaml`` override these (no wrapper key)."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "lanes_per_direction": "[1, inf)",
        "lane_width_m": "(0, inf)",
        "curb_width_m": "[0, inf)",
        "curb_height_m": "[0, inf)",
        "sidewalk_width_m": "[0, inf)",
        "lane_marking_length_m": "(0, inf)",
        "lane_marking_gap_m": "[0, inf)",
        "lane_marking_width_m": "(0, inf)",
        "view_distance_m": "(0, inf)",
        "keep_behind_m": "[0, inf)",
        "building_width_range_m": "(0, inf)",
        "building_height_range_m": "(0, inf)",
        "building_depth_range_m": "(0, inf)",
        "building_setback_range_m": "[0, inf)",
        "building_gap_range_m": "[0, inf)",
        "lamp_spacing_m": "(0, inf)",
        "tree_spacing_m": "(0, inf)",
        "bike_width_m": "(0, inf)",
        "bike_length_m": "(0, inf)",
        "start_lane": "[0, inf)",
        "start_speed_mps": "[0, inf)",
        "speed_ramp_mps_per_s": "[0, inf)",
        "max_cruise_speed_mps": "(0, inf)",
        "pedal_speed_gain": "[0, inf)",
        "brake_speed_gain": "[0, inf)",
        "acceleration_mps2": "(0, inf)",
        "braking_mps2": "(0, inf)",
        "max_lateral_speed_mps": "(0, inf)",
        "lateral_response_s": "(0, inf)",
        "lean_rad_per_mps": "(-inf, inf)",
        "crash_duration_s": "[0, inf)",
        "max_vehicles": "[0, inf)",
        "spawn_rate_per_s": "[0, inf)",
        "initial_vehicles": "[0, inf)",
        "safe_start_m": "[0, inf)",
        "same_direction_speed_range_mps": "[0, inf)",
        "oncoming_speed_range_mps": "[0, inf)",
        "car_share": "[0, 1]",
        "taxi_share": "[0, 1]",
        "lane_jitter_m": "[0, inf)",
        "min_vehicle_gap_m": "[0, inf)",
        "parking_lane_width_m": "[0, inf)",
        "block_length_m": "(0, inf)",
        "cross_street_width_m": "[0, inf)",
    }

    # road layout
    lanes_per_direction: int = 2
    """traffic lanes on each side of the centre line"""
    lane_width_m: float = 3.5
    """width of one lane"""
    curb_width_m: float = 0.3
    """width of the curb between road and sidewalk"""
    curb_height_m: float = 0.15
    """height of the curb above the road"""
    sidewalk_width_m: float = 3.5
    """width of the sidewalk on each side"""
    lane_marking_length_m: float = 3.0
    """length of one dash of the lane markings"""
    lane_marking_gap_m: float = 9.0
    """gap between two dashes of the lane markings"""
    lane_marking_width_m: float = 0.15
    """width of the lane markings"""
    parking_lane_width_m: float = 2.4
    """the parked cars' lane between the outer traffic lane and the kerb (the rider stays out)"""
    block_length_m: float = 110.0
    """distance between the centres of two cross streets"""
    cross_street_width_m: float = 14.0
    """width of a cross street, kerb to kerb"""
    # city
    view_distance_m: float = 320.0
    """the world is built this far ahead of the rider (also where the fog ends)"""
    keep_behind_m: float = 40.0
    """the world is kept this far behind the rider"""
    building_width_range_m: tuple[float, float] = (8.0, 28.0)
    """(min, max) width of a building along the street"""
    building_height_range_m: tuple[float, float] = (6.0, 14.0)
    """(min, max) height of a building"""
    building_depth_range_m: tuple[float, float] = (10.0, 25.0)
    """(min, max) depth of a building away from the street"""
    building_setback_range_m: tuple[float, float] = (0.0, 1.0)
    """(min, max) distance of a building from the sidewalk"""
    building_gap_range_m: tuple[float, float] = (0.0, 0.5)
    """(min, max) gap between neighbouring buildings"""
    lamp_spacing_m: float = 30.0
    """distance between street lamps"""
    tree_spacing_m: float = 9.0
    """distance between trees"""
    # rider
    bike_width_m: float = 0.6
    """the rider's collision width"""
    bike_length_m: float = 1.8
    """the rider's collision length"""
    start_lane: int = 1
    """the rider's lane at the start, counted from the centre line on the rider's side, 1-based"""
    start_speed_mps: float = 6.0
    """the cruise speed at the start"""
    speed_ramp_mps_per_s: float = 0.04
    """how fast the cruise speed rises with time"""
    max_cruise_speed_mps: float = 13.0
    """the cruise speed rises up to this"""
    pedal_speed_gain: float = 0.5
    """full pedal targets cruise * (1 + gain)"""
    brake_speed_gain: float = 0.6
    """full brake targets cruise * (1 - gain)"""
    acceleration_mps2: float = 2.5
    """acceleration toward the target speed"""
    braking_mps2: float = 6.0
    """deceleration toward the target speed"""
    max_lateral_speed_mps: float = 4.0
    """sideways speed at full steering"""
    lateral_response_s: float = 0.3
    """time constant of the steering (inertia)"""
    lean_rad_per_mps: float = 0.08
    """bicycle lean per m/s of lateral speed"""
    crash_duration_s: float = 1.2
    """how long a crash plays before the run is over"""
    # traffic
    max_vehicles: int = 36
    """most vehicles on the road at once"""
    spawn_rate_per_s: float = 2.5
    """new vehicles per second (while below max_vehicles)"""
    initial_vehicles: int = 24
    """vehicles placed when a run starts"""
    safe_start_m: float = 40.0
    """no vehicle starts nearer than this ahead of the rider"""
    same_direction_speed_range_mps: tuple[float, float] = (6.0, 11.0)
    """(min, max) speed of vehicles going the rider's way"""
    oncoming_speed_range_mps: tuple[float, float] = (7.0, 14.0)
    """(min, max) speed of oncoming vehicles"""
    car_share: float = 0.9
    """fraction of new vehicles that are cars"""
    taxi_share: float = 0.0
    """fraction of new vehicles that are taxis (the rest are buses)"""
    lane_jitter_m: float = 0.25
    """vehicles sit up to this far off the lane centre"""
    min_vehicle_gap_m: float = 6.0
    """a vehicle keeps this gap (plus one second of its speed) to the one ahead"""


@dataclasses.dataclass
class AutopilotConfig:
    """How the autopilot picks a line through traffic and steers to it."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "lookahead_s": "(0, inf)",
        "side_margin_m": "[0, inf)",
        "oncoming_penalty_s": "[0, inf)",
        "switch_bonus_s": "(-inf, inf)",
        "steer_gain_per_m": "(0, inf)",
        "brake_below_s": "[0, inf)",
    }

    lookahead_s: float = 6.0
    """how far ahead in time vehicles count"""
    side_margin_m: float = 0.45
    """clearance kept beside a vehicle"""
    oncoming_penalty_s: float = 2.0
    """seconds of clearance a line on the oncoming side loses (prefer the rider's own side)"""
    switch_bonus_s: float = 0.6
    """hysteresis: stay on the current line unless another is clearly better"""
    steer_gain_per_m: float = 0.9
    """steering per metre between the rider and the chosen line"""
    brake_below_s: float = 1.6
    """brake when the chosen line is clear for less than this many seconds"""


DEFAULT_LEVEL = "game/levels/default.yaml"
LEVELS_HINT = f"Levels live in game/levels/, e.g. {DEFAULT_LEVEL}."


def check_level(level: str | None, *, flag: str) -> None:
    """Refuse a level file that is not there, before anything is built or rendered."""
    if level and not Path(level).is_file():
        raise UserError(f"{flag} {level}: no such level file", LEVELS_HINT)


@dataclasses.dataclass
class PlayConfig:
    """``play_game``: ride the city street in a window, or render/record it headless."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "frames": "[1, inf)",
        "seed": "[0, inf)",
        "fps": "[1, inf)",
        "window_scale": "[0, inf)",
    }

    renderer: str = "raster"
    """which view starts on screen: raster, or a view a source adds"""
    headless: bool = False
    """no window (render off screen); needs --frames"""
    autopilot: bool = False
    """the autopilot rides instead of the keyboard"""
    frames: int | None = None
    """stop after this many rendered frames (None: until the window closes)"""
    record: str | None = None
    """write the shown view (record_view) as an H.264 mp4 here"""
    record_view: str | None = None
    """which view --record writes (default: the starting view)"""
    record_side_by_side: str | None = None
    """also write the side_by_side view (a source provides it) here"""
    record_gbuffers: str | None = None
    """write the exact G-buffers as a clip folder here"""
    seed: int = 0
    """seed of the world (traffic, buildings); each restart uses the next one"""
    resolution: str | None = None
    """WIDTHxHEIGHT of the render (the window scales it up); default 320x240"""
    fps: int = 30
    """game steps per second (fixed dt = 1 / fps) and the window's frame rate"""
    level: str = DEFAULT_LEVEL
    """a level file (YAML with the fields of world), applied under --conf files and --world.KEY overrides"""
    window_scale: int = 0
    """integer upscale of the render in the window (0: about 720 pixels tall)"""
    world: WorldConfig = dataclasses.field(default_factory=WorldConfig)
    """the world's tunables (road, city, rider, traffic); the level file sets them first"""
    camera: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    """the first-person rider camera"""
    pilot: AutopilotConfig = dataclasses.field(default_factory=AutopilotConfig)
    """how the autopilot rides"""
