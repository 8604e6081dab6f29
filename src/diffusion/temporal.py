"""ReCoNet's output temporal loss (Gao et al. 2018, eq. 5, with a target): a generated clip
should change from frame to frame as much as a reference clip does under the same motion. The
student and the few-step DiT both hold it to the game's raster on game clips, whose exact flow
and occlusion mask come with them."""

from __future__ import annotations

from torch import Tensor

from src.conditions.warp import backward_warp, warp_valid_mask


def temporal_loss(output: Tensor, target: Tensor, flow_px: Tensor, valid_mask: Tensor) -> Tensor:
    """ReCoNet's output temporal loss with a target: ``b t 3 h w`` output and target,
    ``b t h w 2`` flow (``x_t - x_{t-1}`` at pixels of t), ``b t h w`` valid mask (1 = the flow
    explains the pixel; entry 0 unused). Mean absolute difference of the two frame-to-frame
    changes over the valid pixels."""
    b, t, c, h, w = output.shape
    flow = flow_px[:, 1:].reshape(-1, h, w, 2)

    def change(frames: Tensor) -> Tensor:  # (b t-1) c h w: frame t minus frame t-1 moved to t
        return frames[:, 1:].reshape(-1, c, h, w) - backward_warp(frames[:, :-1].reshape(-1, c, h, w), flow)

    mask = valid_mask[:, 1:].reshape(-1, 1, h, w) * warp_valid_mask(flow)
    difference = (change(output) - change(target)).abs().mean(dim=1, keepdim=True)
    return (difference * mask).sum() / mask.sum().clamp_min(1.0)
