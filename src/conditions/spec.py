"""Which G-buffer channels a model is conditioned on, in which order, and how many tensor
channels each becomes after ``encode``. Stored with every dataset and renderer package.
"""

from __future__ import annotations

import dataclasses

from src.common.errors import UserError

# encoded tensor channels per G-buffer channel
CHANNEL_WIDTHS: dict[str, int] = {"albedo": 3, "depth": 1, "normals": 3, "flow": 2}

# where the game's channels come from (src/conditions/align.py): the exact G-buffer, or the
# real-video extractor run on the game's raster frame
GAME_FLOW_SOURCES = ("gbuffer", "estimated")
GAME_DEPTH_SOURCES = ("gbuffer", "estimated")


@dataclasses.dataclass
class ConditionSpec:
    """The model's condition channels, in order. ``encode`` produces ``num_channels`` planes."""

    channels: tuple[str, ...] = ("albedo", "depth", "normals", "flow")
    """the condition channels the model sees, in order: albedo, depth, normals, flow"""
    normals_source: str = "depth"
    """depth: normals from depth in both domains (they then match); gbuffer: the game's own (game only)"""
    game_flow: str = "gbuffer"
    """the game's flow: gbuffer (exact) | estimated (DIS on the raster frames, as real video)"""
    game_depth: str = "gbuffer"
    """the game's depth: gbuffer (exact) | estimated (the real geometric extractor on the raster frame)"""

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        unknown = [c for c in self.channels if c not in CHANNEL_WIDTHS]
        if unknown or not self.channels:
            raise UserError(
                f"unknown condition channel(s) {unknown or self.channels}",
                f"Choose from {', '.join(CHANNEL_WIDTHS)}.",
            )
        if self.normals_source not in ("depth", "gbuffer"):
            raise UserError(f"unknown normals_source {self.normals_source!r}", "Use 'depth' or 'gbuffer'.")
        for name, choices in (
            ("game_flow", GAME_FLOW_SOURCES),
            ("game_depth", GAME_DEPTH_SOURCES),
        ):
            if getattr(self, name) not in choices:
                raise UserError(
                    f"unknown {name} {getattr(self, name)!r}", f"Use one of {', '.join(choices)}."
                )

    @property
    def num_channels(self) -> int:
        return sum(CHANNEL_WIDTHS[c] for c in self.channels)

    def slices(self) -> dict[str, slice]:
        """Where each channel sits in the encoded tensor's channel axis."""
        out, start = {}, 0
        for name in self.channels:
            out[name] = slice(start, start + CHANNEL_WIDTHS[name])
            start += CHANNEL_WIDTHS[name]
        return out

    def to_dict(self) -> dict:
        return {"channels": list(self.channels)} | {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "channels"
        }

    @classmethod
    def from_dict(cls, values: dict) -> ConditionSpec:
        """A spec from ``to_dict``'s output; keys an older package lacks keep their defaults
        (the exact G-buffer: today's behaviour)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"channels"}
        return cls(channels=tuple(values["channels"]), **{k: v for k, v in values.items() if k in known})
