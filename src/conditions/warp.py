"""Flow geometry: moving frame t-1 into frame t's pixel grid by the flow of frame t, and the
masks of pixels that flow can explain (inside the frame, not occluded, away from motion
boundaries).

Flow is ``x_t - x_{t-1}`` in pixels at pixels of frame t (the game's convention, the G-buffer's
``flow`` channel). The student's objective warps its previous output with it, game clips test
occlusion with it, and the temporal warp error of ``src/eval/metrics.py`` compares frames with it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def backward_warp(image: torch.Tensor, flow_px: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (frame t-1, ``b c h w``) at ``x - flow`` for every pixel x of frame t.

    ``flow_px`` is ``b h w 2`` in pixels, ``x_t - x_{t-1}`` (the game's convention), so the
    result is frame t-1 moved into frame t's pixel grid. Pixels whose source lies outside the
    frame take the border value; ``warp_valid_mask`` says which ones.
    """
    b, _, h, w = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    source_x = xs[None] - flow_px[..., 0]
    source_y = ys[None] - flow_px[..., 1]
    grid = torch.stack([(source_x + 0.5) / w * 2 - 1, (source_y + 0.5) / h * 2 - 1], dim=-1)
    return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def warp_valid_mask(flow_px: torch.Tensor) -> torch.Tensor:
    """``b 1 h w`` mask of pixels whose source ``x - flow`` lies inside the previous frame."""
    _, h, w, _ = flow_px.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    source_x = xs[None] - flow_px[..., 0]
    source_y = ys[None] - flow_px[..., 1]
    inside = (source_x >= 0) & (source_x <= w - 1) & (source_y >= 0) & (source_y <= h - 1)
    return inside[:, None].float()


def forward_backward_mask(
    flow_px: torch.Tensor, forward_flow_px: torch.Tensor, *, alpha: float = 0.01, beta_px2: float = 0.5
) -> torch.Tensor:
    """``b 1 h w`` mask of pixels of frame t that pass the forward-backward consistency check.

    ``flow_px`` is ``b h w 2``, ``x_t - x_{t-1}`` at pixels of frame t (the game's convention);
    ``forward_flow_px`` is ``b h w 2``, the same motion ``x_t - x_{t-1}`` but at pixels of frame
    t-1 (where each pixel of t-1 goes). A pixel x of frame t comes from ``s = x - flow(x)``;
    if it is visible in both frames, t-1's forward flow at s brings it back: ``fwd(s) = flow(x)``.
    Occluded pixels fail ``|fwd(s) - flow(x)|^2 < alpha (|fwd(s)|^2 + |flow(x)|^2) + beta_px2``
    (Sundaram et al. 2010, the test Lai et al. 2018 use for their warp error).
    """
    forward_at_source = backward_warp(forward_flow_px.permute(0, 3, 1, 2), flow_px).permute(0, 2, 3, 1)
    difference = ((forward_at_source - flow_px) ** 2).sum(-1)
    bound = alpha * ((forward_at_source**2).sum(-1) + (flow_px**2).sum(-1)) + beta_px2
    return (difference < bound)[:, None].float()


def motion_boundary_mask(
    flow_px: torch.Tensor, *, alpha: float = 0.01, beta_px2: float = 0.002
) -> torch.Tensor:
    """``b 1 h w`` mask of pixels away from motion boundaries (1 = keep).

    A pixel is a boundary where ``|grad u|^2 + |grad v|^2 > alpha |flow|^2 + beta_px2``
    (Sundaram et al. 2010), with central differences on ``b h w 2`` flow in pixels.
    """
    flow = flow_px.permute(0, 3, 1, 2)  # b 2 h w
    padded = F.pad(flow, (1, 1, 1, 1), mode="replicate")
    grad_x = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
    grad_y = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
    gradient = (grad_x**2 + grad_y**2).sum(1)  # b h w
    return (gradient <= alpha * (flow**2).sum(1) + beta_px2)[:, None].float()


def depth_test_mask(depth_m: torch.Tensor, flow_px: torch.Tensor, *, tolerance: float = 0.1) -> torch.Tensor:
    """``t h w`` mask of pixels of frame t whose source in frame t-1 was not covered by a nearer
    surface (1 = compare; entry 0 unused): the occlusion test for game rides, whose exact flow
    comes without a forward flow.

    ``depth_m``: ``t h w`` metric depth (the game's, sky far away); ``flow_px``: ``t h w 2``
    (``x_t - x_{t-1}`` at pixels of t). A pixel x of frame t comes from ``s = x - flow(x)``; where
    frame t-1 shows something nearer than ``(1 - tolerance) * depth_t(x)`` at s, the point was
    hidden there (a disocclusion: background appearing behind a moving object or an edge). A
    camera that moves forward only makes a seen point's previous depth larger, so a static scene
    passes.
    """
    depth = depth_m.float()
    previous_at_source = backward_warp(depth[:-1, None], flow_px[1:].float())[:, 0]  # (t-1) h w
    visible = (previous_at_source >= (1.0 - tolerance) * depth[1:]).float()
    return torch.cat([torch.ones_like(depth[:1]), visible])  # t h w


def warp_error_mask(
    flow_px: torch.Tensor,
    *,
    forward_flow_px: torch.Tensor | None = None,
    exclude_motion_boundaries: bool = True,
) -> torch.Tensor:
    """The ``valid_mask`` of ``temporal_warp_error`` for a clip: ``t h w`` (1 = compare).

    ``flow_px``: ``t h w 2`` (flow of frame t at pixels of t, x_t - x_{t-1}; entry 0 unused).
    ``forward_flow_px``: ``t h w 2``, entry t the forward flow of frame t-1 to t at pixels of t-1
    (an extractor run the other way; entry 0 unused); given, occluded pixels are left out.
    Motion boundaries are left out unless ``exclude_motion_boundaries`` is false. On game rides
    the exact flow has no extractor errors, but occlusions still need the forward flow or a
    depth test (pass that as ``valid_mask`` directly).
    """
    flow = flow_px.float()
    mask = torch.ones(flow.shape[:3])
    if exclude_motion_boundaries:
        mask = mask * motion_boundary_mask(flow)[:, 0]
    if forward_flow_px is not None:
        mask = mask * forward_backward_mask(flow, forward_flow_px.float())[:, 0]
    return mask  # t h w
