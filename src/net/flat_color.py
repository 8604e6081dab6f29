"""The flat-colour baseline renderer: it returns the albedo (flat-colour) condition planes as the
frame. No weights; one network evaluation per frame.

It is the reference every comparison needs: a renderer that is worse than its own flat-colour
input (by PSNR/SSIM against real frames, or by realism on game rides) adds nothing. It also
proves the renderer interface: play, the benchmark, validation and ``evaluate`` run it exactly as
they run the DiT, because they only see the interface (``src/runtime/renderer.py``).
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor

from src.net.compiling import compile_quietly


class FlatColorRenderer(ModelMixin, ConfigMixin):
    """``forward_frames(cf)`` picks the albedo planes of each frame's encoded condition."""

    # one network evaluation per step (src/runtime/renderers.py: DirectRenderer)
    renderer_kind = "direct"

    @register_to_config
    def __init__(
        self,
        *,
        condition_channels: int = 9,
        albedo_channels: tuple[int, ...] | list[int] = (0, 1, 2),
        frames_per_step: int = 1,
    ):
        super().__init__()
        if len(albedo_channels) != 3 or not all(0 <= c < condition_channels for c in albedo_channels):
            raise ValueError(
                f"albedo_channels must name 3 of the {condition_channels} condition planes, got {albedo_channels}"
            )
        # no weights: the albedo planes are picked by a fixed 0/1 1x1 convolution (exact in fp32),
        # which pnnx exports with the batch axis handled (its channel slices lose track of it)
        selection = torch.zeros(frames_per_step * 3, frames_per_step * condition_channels, 1, 1)
        for frame in range(frames_per_step):
            for plane, channel in enumerate(albedo_channels):
                selection[frame * 3 + plane, frame * condition_channels + channel] = 1.0
        self.register_buffer("selection", selection, persistent=False)

    @property
    def frames_per_step(self) -> int:
        return int(self.config.frames_per_step)

    def check_frame_size(self, height: int, width: int) -> None:
        if height < 1 or width < 1:
            raise ValueError(f"{width}x{height} frames: the size is empty")

    def frame_size_hint(self) -> str:
        return "any size"

    def compile_inference(self) -> None:
        self.forward_frames = compile_quietly(self.forward_frames)

    def forward_frames(self, cf: Tensor) -> Tensor:
        """``cf`` B (f C) h w, the step's frames' conditions stacked on channels -> B (f 3) h w."""
        return torch.nn.functional.conv2d(cf, self.selection).clamp(-1, 1)
