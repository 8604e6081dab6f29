"""Game-side condition transforms that make the game's channels look like real-video ones.

Real-video channels come from weight-free extractors run on pixels (flat colour, DIS flow,
geometric depth); the game's are exact. A model trained on the first learns to trust only what
looks alike on both sides. These transforms run the *same* extractor on the game's raster frame
instead of using the exact channel, so both sides go through one function. Each is chosen per
channel by the condition spec (``ConditionSpec.game_flow`` / ``game_depth``); ``"gbuffer"`` (the
default, what every older package does) keeps the exact channel.

- ``game_flow="estimated"``: OpenCV DIS between consecutive raster frames (the real extractor),
  zero on a ride's first frame (as on a real clip's).
- ``game_depth="estimated"``: the real ``GeometricDepth`` on the raster frame (relative inverse
  depth, so the encoded depth and the normals derived from it come from one function).

Two more were measured and dropped (``docs/experiments.md``, "Condition levers, measured"): the
flat colour of the raster frame by ``FlatColor``, and the exact flow blurred toward DIS's blobby
look; both widened the gap.

``GameConditionAligner`` is stateful (the previous raster frame): ``reset()`` starts
a new ride; ``__call__(channels)`` takes one frame's G-buffer arrays and returns the arrays
``encode`` gets, with ``depth_kind``. ``align_game_clip`` runs it over a recorded clip.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from src.common.gbuffer import GBuffer
from src.conditions.depth import GeometricDepth
from src.conditions.encode import ConditionStats, encode
from src.conditions.extract import ExtractConfig
from src.conditions.flow import DISFlow
from src.conditions.spec import ConditionSpec


def needs_alignment(spec: ConditionSpec) -> bool:
    """Whether ``spec`` asks for any game-side transform (False: the exact G-buffer, as before)."""
    return (spec.game_flow, spec.game_depth) != ("gbuffer", "gbuffer")


@dataclasses.dataclass
class GameConditionAligner:
    """Turns one game frame's exact channels into the ones the spec asks for (see the module docstring)."""

    spec: ConditionSpec
    extract: ExtractConfig = dataclasses.field(default_factory=ExtractConfig)

    def __post_init__(self) -> None:
        self._flow = DISFlow(self.extract.dis_preset)
        self._depth = GeometricDepth(  # the real extractor's settings
            horizon_fraction=self.extract.horizon_fraction,
            parallax_weight=self.extract.parallax_weight,
            texture_weight=self.extract.texture_weight,
        )
        self._previous: np.ndarray | None = None

    def reset(self) -> None:
        """A new ride: forget the previous frame."""
        self._previous = None

    def __call__(self, channels: dict[str, np.ndarray], *, depth_kind: str = "metric") -> tuple[dict, str]:
        """One frame's arrays (``color`` h w 3 uint8 and the exact ``albedo``, ``depth``, ``flow``,
        ``normals``) -> (the arrays to encode, their depth kind)."""
        spec = self.spec
        out = dict(channels)
        color = channels.get("color")
        if color is None and needs_alignment(spec):
            raise ValueError("game-side condition transforms from the raster need the G-buffer's color")
        if spec.game_flow == "estimated":
            previous, self._previous = self._previous, color
            out["flow"] = (
                np.zeros(color.shape[:2] + (2,), np.float32)
                if previous is None
                else self._flow(previous, color)
            )
        if spec.game_depth == "estimated":
            out["depth"] = self._depth(color[None], out["flow"][None])[0].astype(np.float32)
            depth_kind = "inverse_relative"
        return out, depth_kind


def make_aligner(spec: ConditionSpec) -> GameConditionAligner | None:
    """An aligner for ``spec``'s game-side transforms, or None where it asks for none."""
    return GameConditionAligner(spec) if needs_alignment(spec) else None


def encode_game_frame(
    gbuffer: GBuffer,
    aligner: GameConditionAligner | None,
    *,
    spec: ConditionSpec,
    stats: ConditionStats,
    fov_y_deg: float | None = None,
    new_run: bool = False,
):
    """One game G-buffer through the spec's game-side transforms (``aligner``, None: none) and
    ``encode``: a ``C h w`` tensor. ``new_run`` starts a new ride (the aligner forgets its state)."""
    if aligner is None:
        channels, depth_kind = gbuffer.arrays(), gbuffer.depth_kind
    else:
        if new_run:
            aligner.reset()
        channels, depth_kind = aligner(gbuffer.arrays(), depth_kind=gbuffer.depth_kind)
    return encode(channels, spec=spec, stats=stats, depth_kind=depth_kind, fov_y_deg=fov_y_deg)


def align_game_clip(
    arrays: dict[str, np.ndarray],
    spec: ConditionSpec,
    *,
    depth_kind: str = "metric",
    extract: ExtractConfig | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """A recorded ride's arrays (``t h w ...``) through a fresh ``GameConditionAligner``, frame by
    frame as play runs it; a ``new_run`` frame (an autopilot restart) starts a new ride."""
    if not needs_alignment(spec):
        return arrays, depth_kind
    aligner = GameConditionAligner(spec, extract or ExtractConfig())
    keys = [k for k in ("color", "albedo", "depth", "flow", "normals") if k in arrays]
    frames, kind = [], depth_kind
    for t in range(len(arrays[keys[0]])):
        if "new_run" in arrays and t > 0 and bool(arrays["new_run"][t]):
            aligner.reset()
        frame, kind = aligner({k: arrays[k][t] for k in keys}, depth_kind=depth_kind)
        frames.append(frame)
    out = {k: np.stack([f[k] for f in frames]) for k in keys}
    return out, kind
