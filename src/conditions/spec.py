"""Which G-buffer channels a model is conditioned on, in which order, and how many tensor
channels each becomes after ``encode``. Stored with every dataset and renderer package.
"""

from __future__ import annotations

import dataclasses

from src.common.errors import UserError

# encoded tensor channels per G-buffer channel
CHANNEL_WIDTHS: dict[str, int] = {"albedo": 3, "depth": 1, "normals": 3, "flow": 2}


@dataclasses.dataclass
class ConditionSpec:
    """The model's condition channels, in order. ``encode`` produces ``num_channels`` planes."""

    channels: tuple[str, ...] = ("albedo", "depth", "normals", "flow")
    """the condition channels the model sees, in order: albedo, depth, normals, flow"""
    normals_source: str = "depth"
    """depth: normals from depth in both domains (they then match); gbuffer: the game's own (game only)"""

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
        return {"channels": list(self.channels), "normals_source": self.normals_source}

    @classmethod
    def from_dict(cls, values: dict) -> ConditionSpec:
        return cls(channels=tuple(values["channels"]), normals_source=values.get("normals_source", "depth"))
