"""The city's layout: blocks between cross streets, buildings with facades, and the static things
of each block (parked cars, utility poles and wires, street trees and lamps, pavement slabs and
kerbs, and at each cross street traffic lights, signs, planters with bushes and crosswalks).

Numpy only. Block ``k`` runs from the cross street centred at ``s = k * block_length_m`` to the
next; everything in it is drawn from its own generator ``default_rng([seed, 2, k])`` and built
once into a ``Scene`` (static: each instance's previous pose is its pose), so one seed gives the
same street whatever the ride, and a frame only concatenates the blocks it sees.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from src.game.palette import CityPalette, city_palette

MATERIALS = ("brick", "concrete", "stucco", "glass")
MATERIAL_SHARES = (0.35, 0.25, 0.25, 0.15)  # of buildings; a layout choice, not a colour
PARKED_CAR_SIZE_M = (4.4, 1.8, 1.45)  # length, width, height (the game's car)
TYRE_ALBEDO = (0.06, 0.06, 0.06)
SLAB_M = 1.5  # pavement slab side


@dataclasses.dataclass
class Building:
    side: int  # +1 right, -1 left
    s_start_m: float
    width_m: float  # along the road
    depth_m: float
    height_m: float
    setback_m: float
    colour: tuple[float, float, float]
    glass_colour: tuple[float, float, float] = (0.2, 0.2, 0.2)
    material: int = 0  # index into MATERIALS
    floor_height_m: float = 3.2
    window_spacing_m: float = 2.5


def cross_street_span(k: np.ndarray | int, config) -> tuple:
    """(start, end) in s of cross street ``k``, centred on ``(k + 0.5) * block_length_m`` (the
    ride starts mid-block)."""
    centre = (np.asarray(k) + 0.5) * config.block_length_m
    return centre - config.cross_street_width_m / 2, centre + config.cross_street_width_m / 2


def next_building(rng: np.random.Generator, config, side: int, end_m: float) -> Building:
    """The next building on ``side`` after ``end_m``; none stands in a cross street."""
    start = end_m + rng.uniform(*config.building_gap_range_m)
    width = rng.uniform(*config.building_width_range_m)
    for _ in range(4):
        k = math.floor((start - config.cross_street_width_m / 2) / config.block_length_m + 0.5)
        street_start, street_end = cross_street_span(k, config)  # the next cross street's kerbs
        if start > street_start - 0.5:  # in the cross street: start after it
            start = street_end + 0.5
            continue
        if start + width > street_start - 0.5:  # would run into it: end before it, or start after
            width = street_start - 0.5 - start
            if width < config.building_width_range_m[0] * 0.6:
                start, width = street_end + 0.5, rng.uniform(*config.building_width_range_m)
                continue
        break
    palette = city_palette()
    material = int(rng.choice(len(MATERIALS), p=MATERIAL_SHARES))
    colour = palette.draw("building", rng, 1, half="bright")[0]
    glass = palette.draw("building", rng, 1, half="dark")[0]
    return Building(
        side=side,
        s_start_m=float(start),
        width_m=float(width),
        depth_m=float(rng.uniform(*config.building_depth_range_m)),
        height_m=float(rng.uniform(*config.building_height_range_m)),
        setback_m=float(rng.uniform(*config.building_setback_range_m)),
        colour=tuple(float(v) for v in colour),
        glass_colour=tuple(float(v) for v in glass),
        material=material,
        floor_height_m=float(rng.uniform(3.0, 4.2)),
        window_spacing_m=float(rng.uniform(1.8, 3.4) if material != 3 else rng.uniform(1.3, 1.8)),
    )


@dataclasses.dataclass(frozen=True)
class StreetGeometry:
    """Where the street's parts sit across it (x in metres from the centre line)."""

    traffic_half_m: float  # edge of the outermost traffic lane
    kerb_x_m: float  # the kerb face (after the parking lane)
    curb_width_m: float
    curb_height_m: float
    sidewalk_width_m: float

    @classmethod
    def of(cls, config) -> StreetGeometry:
        traffic = config.lanes_per_direction * config.lane_width_m
        return cls(
            traffic,
            traffic + config.parking_lane_width_m,
            config.curb_width_m,
            config.curb_height_m,
            config.sidewalk_width_m,
        )

    @property
    def facade_x_m(self) -> float:
        return self.kerb_x_m + self.curb_width_m + self.sidewalk_width_m


def facade_models(buildings: list[Building], street: StreetGeometry) -> dict[str, np.ndarray]:
    """Per building: its centre (n 3) and size (n 3) in world metres, from the list."""
    side = np.array([b.side for b in buildings], float)
    depth = np.array([b.depth_m for b in buildings])
    height = np.array([b.height_m for b in buildings])
    width = np.array([b.width_m for b in buildings])
    setback = np.array([b.setback_m for b in buildings])
    s_centre = np.array([b.s_start_m for b in buildings]) + width / 2
    x_centre = side * (street.facade_x_m + setback + depth / 2)
    return {
        "centre": np.stack([x_centre, height / 2, -s_centre], -1),
        "size": np.stack([depth, height, width], -1),
    }


def _uniform_spacing(rng, start: float, end: float, spacing: float, jitter: float) -> np.ndarray:
    """Positions from ``start`` to ``end`` about ``spacing`` apart, each moved up to ``jitter``."""
    count = max(0, int((end - start) // spacing))
    base = start + (np.arange(count) + 0.5) * (end - start) / max(count, 1)
    return base + rng.uniform(-jitter, jitter, count)


def parked_car_positions(rng, start: float, end: float) -> np.ndarray:
    """Centres along a kerb from ``start`` to ``end``: nose to tail with gaps, some long (a driveway)."""
    out, s = [], start + rng.uniform(0.5, 6.0)
    length = PARKED_CAR_SIZE_M[0]
    while s + length < end:
        out.append(s + length / 2)
        s += length + (rng.uniform(5.0, 14.0) if rng.random() < 0.2 else rng.uniform(0.6, 2.5))
    return np.array(out, float)


def palette() -> CityPalette:
    return city_palette()
