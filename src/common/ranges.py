"""Declared value ranges of config fields, checked when a command's config is parsed.

Every numeric field of a config that a script parses declares its allowed range once, in its
class body (``RANGES = {"learning_rate": "(0, inf)"}``); a ``(low, high)`` field must not be
inverted, and a class lists the pairs of fields whose first must be below the second in
``ORDERED`` (``(("near_m", "far_m"),)``). A text field with a few allowed values lists them in
``CHOICES`` (``{"split": ("train", "val", "all")}``). ``check_ranges`` refuses the first value
outside with one line, when the command line is parsed: before any heavy library loads.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from src.common.errors import UserError

_INTERVAL = re.compile(r"\s*([\[(])\s*([^,\s]+)\s*,\s*([^\])\s]+)\s*([\])])\s*")


@dataclasses.dataclass(frozen=True)
class Interval:
    """A numeric field's allowed range, written ``"[1, inf)"``: square brackets include the end."""

    low: float
    high: float
    low_closed: bool
    high_closed: bool

    @classmethod
    def parse(cls, text: str) -> Interval:
        match = _INTERVAL.fullmatch(text)
        if not match:
            raise ValueError(f"not an interval: {text!r} (write it like '[0, 1]' or '(0, inf)')")
        return cls(float(match.group(2)), float(match.group(3)), match.group(1) == "[", match.group(4) == "]")

    def __contains__(self, value: float) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return bool(above and below)  # NaN is in no interval

    def describe(self) -> str:
        def number(x: float) -> str:
            return str(int(x)) if x.is_integer() else repr(x)

        low = f"{'>=' if self.low_closed else '>'} {number(self.low)}" if math.isfinite(self.low) else ""
        high = f"{'<=' if self.high_closed else '<'} {number(self.high)}" if math.isfinite(self.high) else ""
        if low and high:
            return f"{low} and {high}"
        return low or high or "a finite number"


def field_ranges(config_cls: type) -> dict[str, Interval]:
    """The declared ranges of a config dataclass's numeric fields (its ``RANGES`` mapping).

    Every numeric field (int, float, and tuples or lists of them) of a config that a script parses
    declares its range once, in its class body: ``RANGES = {"learning_rate": "(0, inf)"}``
    (a subclass adds its own fields' ranges to its bases'). The parser refuses a value outside it
    with one line (check_ranges).
    """
    ranges: dict[str, Interval] = {}
    for cls in reversed(config_cls.__mro__):
        for name, text in vars(cls).get("RANGES", {}).items():
            ranges[name] = Interval.parse(text)
    return ranges


def _check_order(config: Any, prefix: str) -> None:
    """A ``(low, high)`` field (named ``..._range...``) must not be inverted, and the pairs a class
    lists in ``ORDERED`` (``(("near_m", "far_m"),)``) must have the first below the second."""
    hint = "Change it on the command line or in the --conf file that sets it."
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if "_range" in field.name and isinstance(value, (list, tuple)) and len(value) == 2:
            low, high = value
            if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
                raise UserError(
                    f"invalid --{prefix}{field.name} {list(value)}: the low end is above the high end", hint
                )
    for low_name, high_name in getattr(type(config), "ORDERED", ()):
        low, high = getattr(config, low_name), getattr(config, high_name)
        if low is not None and high is not None and not low < high:
            raise UserError(
                f"invalid --{prefix}{low_name} {low} with --{prefix}{high_name} {high}: {low_name} must be "
                f"below {high_name}",
                hint,
            )


def check_ranges(config: Any, prefix: str = "") -> None:
    """Raise a one-line UserError for the first numeric field of ``config`` outside its range,
    the first inverted pair (``_check_order``), or the first text field not one of its ``CHOICES``."""
    ranges = field_ranges(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            check_ranges(value, f"{prefix}{field.name}.")
            continue
        interval = ranges.get(field.name)
        if interval is None or value is None or isinstance(value, bool):
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, (int, float)) and not isinstance(item, bool) and item not in interval:
                key = f"{prefix}{field.name}"
                shown = str(list(value)) if isinstance(value, (list, tuple)) else str(value)
                each = "each value of " if isinstance(value, (list, tuple)) else ""
                raise UserError(
                    f"invalid --{key} {shown}: out of range, {each}{key} must be {interval.describe()}",
                    "Change it on the command line or in the --conf file that sets it.",
                )
    _check_order(config, prefix)
    for name, allowed in getattr(type(config), "CHOICES", {}).items():
        value = getattr(config, name)
        for item in value if isinstance(value, (list, tuple)) else [value]:  # a list: each of its items
            if item is not None and item not in allowed:
                raise UserError(f"unknown --{prefix}{name} {item!r}", f"Use {', '.join(map(str, allowed))}.")
