"""The traffic's vehicles: their kinds and sizes, and the taxis' colour (the world moves them)."""

from __future__ import annotations

import dataclasses

__all__ = ["TAXI_COLOUR", "VEHICLE_SIZES_M", "Vehicle"]

VEHICLE_SIZES_M = {  # length, width, height
    "car": (4.4, 1.8, 1.45),
    "taxi": (4.6, 1.8, 1.5),
    "bus": (12.0, 2.5, 3.1),
}


@dataclasses.dataclass
class Vehicle:
    kind: str
    lane: int  # signed: +1..+n the rider's direction, -1..-n oncoming
    x_m: float
    s_m: float  # centre
    speed_mps: float  # along its own heading, >= 0
    desired_speed_mps: float
    colour: tuple[float, float, float]
    prev_s_m: float = 0.0
    prev_x_m: float = 0.0

    @property
    def direction(self) -> int:
        return 1 if self.lane > 0 else -1

    @property
    def length_m(self) -> float:
        return VEHICLE_SIZES_M[self.kind][0]

    @property
    def width_m(self) -> float:
        return VEHICLE_SIZES_M[self.kind][1]

    @property
    def height_m(self) -> float:
        return VEHICLE_SIZES_M[self.kind][2]


TAXI_COLOUR = (0.95, 0.75, 0.05)
