"""One city block's static things as a prebuilt ``Scene`` (numpy only; the layout is in city.py).

Block ``k`` holds the cross street centred at ``s = (k + 0.5) * block_length_m`` with its intersection
(traffic lights, signs, planters with bushes, crosswalks, manholes) and the stretch of street up
to the next cross street: kerbs and slab pavements, parked cars along both kerbs, utility poles
with overhead wires, street lamps and street trees. Colours are drawn from the measured palette.
"""

from __future__ import annotations

import numpy as np

from src.game.city import (
    PARKED_CAR_SIZE_M,
    SLAB_M,
    StreetGeometry,
    _uniform_spacing,
    cross_street_span,
    parked_car_positions,
)
from src.game.instances import PATTERNS, Scene, SceneBuilder
from src.game.palette import CityPalette, city_palette

WIRE_HEIGHT_M = 8.4
POLE_HEIGHT_M = 9.0
OUTSKIRT_M = 80.0  # the pavement and cross streets run on this far behind the facades


def build_block(k: int, config, seed: int) -> tuple[Scene, Scene]:
    """Everything static of block ``k`` (see the module docstring), the same for a seed every time:
    (the ground: pavements, kerbs, the cross street and its crosswalks; the things standing on it)."""
    rng = np.random.default_rng([seed, 2, k & 0xFFFFFFFF, k < 0])
    street = StreetGeometry.of(config)
    pal = city_palette()
    ground, builder = SceneBuilder(), SceneBuilder()
    street_start, street_end = cross_street_span(k, config)
    s0, s1 = street_end, cross_street_span(k + 1, config)[0]  # the block's kerbs
    _add_pavement(ground, street, config, (street_start, street_end), (s0, s1), pal)
    _add_crossings(ground, rng, street, (street_start, street_end), pal)
    for side in (-1, 1):
        _add_parked_cars(builder, rng, street, side, s0 + 7.0, s1 - 7.0, pal)
        _add_poles_and_wires(builder, rng, street, side, s0 + 3.0, s1 - 3.0, pal)
        _add_lamps_and_trees(builder, rng, street, config, side, (s0 + 4.0, s1 - 4.0), pal)
    _add_intersection(builder, rng, street, (street_start, street_end), pal)
    return ground.build(), builder.build()


def _add_pavement(builder, street: StreetGeometry, config, cross: tuple, kerbs: tuple, pal: CityPalette):
    """Kerbs and slab pavements along the block, the cross street's asphalt out to the outskirts."""
    s0, s1 = kerbs
    outer = street.curb_width_m + street.sidewalk_width_m + OUTSKIRT_M
    curb_colour = pal.brightest("sidewalk")
    for side in (-1, 1):
        x_curb = side * (street.kerb_x_m + street.curb_width_m / 2)
        builder.add_boxes(
            [(x_curb, street.curb_height_m / 2, -(s0 + s1) / 2)],
            [(street.curb_width_m, street.curb_height_m, s1 - s0)],
            curb_colour,
            "curb",
        )
        walk_w = outer - street.curb_width_m
        centre = (side * (street.kerb_x_m + street.curb_width_m + walk_w / 2), -(s0 + s1) / 2)
        builder.add_boxes(
            [(centre[0], street.curb_height_m / 2 - 0.005, centre[1])],
            [(walk_w, street.curb_height_m - 0.01, s1 - s0)],
            pal.colours("sidewalk")[0],
            "sidewalk",
            pattern=(PATTERNS["slabs"], centre[0], centre[1], SLAB_M),
        )
        road = (side * (street.kerb_x_m + outer / 2), -(cross[0] + cross[1]) / 2)
        builder.add_boxes(
            [(road[0], 0.0, road[1])],
            [(outer, 1.0, cross[1] - cross[0])],
            pal.colours("road")[0],
            "road",
            mesh="quad",
            pattern=(PATTERNS["asphalt"], road[0], road[1], 0.0),
        )


def _add_parked_cars(builder, rng, street: StreetGeometry, side: int, s0: float, s1: float, pal):
    """Cars nose to tail in the parking lane, with gaps; three boxes each, as the traffic's cars."""
    s = parked_car_positions(rng, s0, s1)
    n = len(s)
    if n == 0:
        return
    length, width, height = PARKED_CAR_SIZE_M
    lane = street.kerb_x_m - street.traffic_half_m
    x = side * (street.kerb_x_m - lane / 2) + rng.uniform(-0.15, 0.15, n)
    heading = np.where(rng.random(n) < 0.9, side, -side)  # most face the way of their lane
    body_h = height * 0.5
    cabin_h = height - 0.3 - body_h
    parts = (  # dy, ds (toward the front), size, albedo
        (0.3, 0.0, (width - 0.15, 0.45, length - 0.5), np.broadcast_to(pal.darkest("vehicle"), (n, 3))),
        (0.3 + body_h / 2, 0.0, (width, body_h, length), pal.draw("vehicle", rng, n)),
        (0.3 + body_h + cabin_h / 2, -0.25, (width * 0.88, cabin_h, length * 0.5), None),
    )
    glass = np.broadcast_to(pal.darkest("building"), (n, 3))
    for dy, ds, size, albedo in parts:
        centres = np.stack([x, np.full(n, dy), -(s + heading * ds)], -1)
        builder.add_boxes(centres, np.tile(size, (n, 1)), glass if albedo is None else albedo, "vehicle")


def _add_poles_and_wires(builder, rng, street: StreetGeometry, side: int, s0: float, s1: float, pal):
    """Wooden utility poles with a crossarm, and two wires from each pole to the next."""
    s = _uniform_spacing(rng, s0, s1, 32.0, 3.0)
    n = len(s)
    if n == 0:
        return
    x = side * (street.kerb_x_m + street.curb_width_m + 0.5)
    colour = pal.draw("pole", rng, n)
    builder.add_boxes(
        np.stack([np.full(n, x), np.full(n, POLE_HEIGHT_M / 2), -s], -1),
        np.tile([0.28, POLE_HEIGHT_M, 0.28], (n, 1)),
        colour,
        "pole",
        mesh="cylinder",
    )
    builder.add_boxes(
        np.stack([np.full(n, x), np.full(n, WIRE_HEIGHT_M + 0.1), -s], -1),
        np.tile([2.0, 0.12, 0.14], (n, 1)),
        colour,
        "pole",
    )
    if n < 2:
        return
    span, mid = np.diff(s), (s[1:] + s[:-1]) / 2
    for dx in (-0.85, 0.85):
        builder.add_boxes(
            np.stack([np.full(n - 1, x + dx), np.full(n - 1, WIRE_HEIGHT_M + 0.2), -mid], -1),
            np.stack([np.full(n - 1, 0.03), np.full(n - 1, 0.03), span], -1),
            pal.darkest("pole"),
            "wire",
        )


def _add_lamps_and_trees(builder, rng, street: StreetGeometry, config, side: int, span: tuple, pal):
    """Street lamps on the kerb and trees with crowns of one to three varied spheres."""
    x_kerb = side * (street.kerb_x_m + street.curb_width_m)
    lamp_s = _uniform_spacing(rng, *span, config.lamp_spacing_m, 1.0)
    m = len(lamp_s)
    if m:
        pole = pal.draw("pole", rng, m)
        for centre_x, y, size, mesh, albedo in (
            (x_kerb + side * 0.9, 3.0, (0.16, 6.0, 0.16), "cylinder", pole),
            (x_kerb + side * 0.1, 6.0, (1.6, 0.1, 0.1), "box", pole),
            (
                x_kerb - side * 0.6,
                5.9,
                (0.6, 0.15, 0.3),
                "box",
                np.broadcast_to(pal.brightest("pole"), (m, 3)),
            ),
        ):
            centres = np.stack([np.full(m, centre_x), np.full(m, y), -lamp_s], -1)
            builder.add_boxes(centres, np.tile(size, (m, 1)), albedo, "pole", mesh=mesh)
    tree_s = _uniform_spacing(rng, *span, config.tree_spacing_m, 3.0)
    n = len(tree_s)
    if n == 0:
        return
    x = x_kerb + side * rng.uniform(1.3, 1.9, n)
    trunk_h = rng.uniform(2.0, 3.4, n)
    builder.add_boxes(
        np.stack([x, trunk_h / 2, -tree_s], -1),
        np.stack([np.full(n, 0.3), trunk_h, np.full(n, 0.3)], -1),
        pal.darkest("vegetation") * 0.8,
        "tree",
        mesh="cylinder",
    )
    crowns = rng.integers(1, 3, n)
    tree = np.repeat(np.arange(n), crowns)
    size = rng.uniform(2.2, 4.6, len(tree))
    offset = rng.uniform(-0.8, 0.8, (len(tree), 2)) * (crowns[tree] > 1)[:, None]
    squash = rng.uniform(0.75, 1.35, len(tree))
    builder.add_boxes(
        np.stack(
            [x[tree] + offset[:, 0], trunk_h[tree] + size * squash * 0.4, -tree_s[tree] + offset[:, 1]], -1
        ),
        np.stack([size, size * squash, size * rng.uniform(0.85, 1.15, len(tree))], -1),
        pal.draw("vegetation", rng, len(tree)),
        "tree",
        mesh="sphere",
    )


def _add_intersection(builder, rng, street: StreetGeometry, cross: tuple, pal):
    """Traffic lights at the four corners (mast arms over the road), signs, planters with bushes."""
    start, end = cross
    corner_x = street.kerb_x_m + street.curb_width_m + 0.45
    dark = pal.darkest("pole")
    lit = int(rng.integers(3))
    arm = 5.5  # mast arms reach over the road at the two corners that face oncoming traffic
    for side, s in ((-1, start - 1.2), (1, start - 1.2), (-1, end + 1.2), (1, end + 1.2)):
        x = side * corner_x
        builder.add_boxes([(x, 2.6, -s)], [(0.2, 5.2, 0.2)], dark, "pole", mesh="cylinder")
        heads = [(x - side * 0.25, 3.4)]
        if (side > 0) == (s < start):
            builder.add_boxes([(x - side * arm / 2, 5.1, -s)], [(arm, 0.14, 0.14)], dark, "pole")
            heads.append((x - side * arm, 4.45))
        for head_x, head_y in heads:
            builder.add_boxes(
                [(head_x, head_y, -s)],
                [(0.34, 1.0, 0.3)],
                dark,
                "traffic_light",
                pattern=(PATTERNS["traffic_light"], (lit + (side > 0)) % 3, 0.0, 0.0),
            )
    _add_signs_and_planters(builder, rng, street, cross, pal)


def _add_crossings(builder, rng, street: StreetGeometry, cross: tuple, pal):
    """Crosswalks over the main road and over the cross street, and manholes in the lanes."""
    start, end = cross
    width = end - start
    marking = pal.brightest("lane_marking")
    half_road = street.kerb_x_m
    for s in (start - 3.0, end + 3.0):  # crosswalks over the main road, bars along s
        builder.add_boxes(
            [(0.0, 0.021, -s)],
            [(2 * half_road, 1.0, 3.2)],
            marking,
            "lane_marking",
            mesh="quad",
            pattern=(PATTERNS["crosswalk"], 0.0, 1.1, 0.0),
            seed=s,
        )
    walk_x = street.kerb_x_m + street.curb_width_m + street.sidewalk_width_m / 2
    for side in (-1, 1):  # and over the cross street, along the pavement
        builder.add_boxes(
            [(side * walk_x, 0.021, -(start + end) / 2)],
            [(3.2, 1.0, width)],
            marking,
            "lane_marking",
            mesh="quad",
            pattern=(PATTERNS["crosswalk"], 1.0, 1.1, 0.0),
            seed=side,
        )
    lanes = rng.uniform(-street.traffic_half_m + 1.0, street.traffic_half_m - 1.0, 2)
    builder.add_boxes(
        np.stack([lanes, np.full(2, 0.015), -rng.uniform(end + 8.0, end + 60.0, 2)], -1),
        np.tile([0.75, 0.03, 0.75], (2, 1)),
        pal.darkest("road"),
        "road",
        mesh="cylinder",
    )


def _add_signs_and_planters(builder, rng, street: StreetGeometry, cross: tuple, pal):
    """A sign on a post at two corners; planters with a bush on the corners' pavement."""
    start, end = cross
    post_x = street.kerb_x_m + street.curb_width_m + 0.35
    for side, s in ((1, start - 4.5), (-1, end + 4.5)):
        builder.add_boxes(
            [(side * post_x, 1.4, -s)], [(0.07, 2.8, 0.07)], pal.darkest("pole"), "pole", mesh="cylinder"
        )
        builder.add_boxes([(side * post_x, 2.75, -s)], [(0.05, 0.75, 0.75)], pal.draw("pole", rng, 1), "sign")
    planter_x = street.kerb_x_m + street.curb_width_m + street.sidewalk_width_m - 1.0
    corners = [(side, s) for side in (-1, 1) for s in (start - 3.5, start - 7.0, end + 3.5, end + 7.0)]
    keep = rng.random(len(corners)) < 0.6
    for side, s in (c for c, k in zip(corners, keep) if k):
        builder.add_boxes(
            [(side * planter_x, 0.45, -s)], [(1.1, 0.6, 2.2)], pal.draw("sidewalk", rng, 1), "planter"
        )
        size = rng.uniform(1.0, 1.6)
        builder.add_boxes(
            [(side * planter_x, 0.75 + size * 0.35, -s)],
            [(size, size * 0.8, size * 1.6)],
            pal.draw("vegetation", rng, 1),
            "tree",
            mesh="sphere",
        )
