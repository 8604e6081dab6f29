"""What the play loop shows and records: the built-in views of a G-buffer and the view sources
that add more (play's neural renderers, say), with what each source gets per frame."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from src.common.errors import UserError
from src.common.gbuffer import GBuffer
from src.game.camera import Intrinsics
from src.game.visualize import colorize_depth, colorize_flow, colorize_normals, colorize_semantic
from src.game.world import WorldState

BUILTIN_VIEWS = ("color", "depth", "flow", "normals", "semantic", "albedo")


@dataclasses.dataclass(frozen=True)
class FrameInfo:
    """What a view source gets with each G-buffer."""

    frame_index: int
    new_run: bool  # the first frame of a run: no motion history (flow is zero)
    world: WorldState
    intrinsics: Intrinsics
    view_matrix: np.ndarray  # world -> camera, 4 4 float64


class ViewSource:
    """Views added to the built-in ones (play's neural renderers, say). The session calls
    ``select_views`` before each frame, then the source itself on the frame's G-buffer, ``reset``
    when a run restarts and ``hud_lines`` for the window; its owner calls ``close``."""

    names: tuple[str, ...] | None = None
    """the views it returns, checked before the first frame (None: not declared)"""

    def __call__(self, gbuffer: GBuffer, info: FrameInfo) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def select_views(self, views: set[str]) -> None:
        """The views on screen or recorded this frame, so work for views nobody sees can be skipped."""

    def reset(self) -> None:
        """A run restarted: drop recurrent state."""

    def hud_lines(self) -> list[str]:
        return []

    def close(self) -> None:
        """Release threads and models."""


class FunctionViewSource(ViewSource):
    """A plain function ``(gbuffer, info) -> views`` as a view source (its names not declared)."""

    def __init__(self, function: Callable[[GBuffer, FrameInfo], dict[str, np.ndarray]]):
        self.function = function

    def __call__(self, gbuffer: GBuffer, info: FrameInfo) -> dict[str, np.ndarray]:
        return self.function(gbuffer, info)


def as_view_source(source: ViewSource | Callable[[GBuffer, FrameInfo], dict[str, np.ndarray]]) -> ViewSource:
    return source if isinstance(source, ViewSource) else FunctionViewSource(source)


def builtin_view(name: str, gbuffer: GBuffer) -> np.ndarray:
    """A built-in view of ``gbuffer`` as h w 3 uint8; KeyError for another name."""
    if name == "color":
        return gbuffer.color
    if name == "depth":
        return colorize_depth(gbuffer.depth, kind=gbuffer.depth_kind)
    if name == "flow":
        return colorize_flow(gbuffer.flow, max_magnitude_px=max(4.0, gbuffer.width / 40))
    if name == "normals":
        return colorize_normals(gbuffer.normals)
    if name == "semantic":
        return colorize_semantic(gbuffer.semantic)
    if name == "albedo":
        return gbuffer.albedo
    raise KeyError(name)


def view_image(name: str, gbuffer: GBuffer, extra: dict[str, np.ndarray]) -> np.ndarray:
    """The view called ``name``: one a source added this frame, else a built-in one."""
    if name in extra:
        return extra[name]
    try:
        return builtin_view(name, gbuffer)
    except KeyError:
        known = ", ".join(list(BUILTIN_VIEWS) + list(extra))
        raise UserError(f"unknown view '{name}'", f"Choose one of: {known}.") from None
