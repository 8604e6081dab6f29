"""A plain regression baseline: a small conv net from encoded conditions straight to frames.

Trained with L1 (``objective: regression`` of the training loop, ``conf/regression_cpu.yaml``),
it predicts the conditional mean, so it scores high PSNR/SSIM on real reconstruction while drawing no detail the conditions do not carry; every
comparison of a generative renderer keeps it beside the flat-colour input.

Contract: ``forward(cond)`` maps ``b t C h w`` encoded conditions (``src/conditions/encode.py``)
to ``b t 3 h w`` frames in [-1, 1], one independent evaluation per frame (no temporal context,
no noise). The net is PixelUnshuffle -> 3x3 conv stem -> residual 3x3 conv blocks -> 3x3 conv ->
PixelShuffle, added to the albedo (flat-colour) condition planes; the last conv starts at zero,
so an untrained net returns its flat-colour input. ``h`` and ``w`` must be multiples of
``unshuffle_factor``. Every tensor inside ``forward_frames`` has rank <= 4, so it exports to ncnn.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from src.net.compiling import compile_quietly
from src.net.student import ResidualConvBlock


class RegressionNet(ModelMixin, ConfigMixin):
    """Per-frame conv net: encoded conditions -> frames, a residual on the albedo planes.

    A renderer model (``src/net/models.py``) of kind "direct": ``forward_frames`` is its step,
    one network evaluation per frame, so play, ``evaluate``, the benchmark and the ncnn export
    run it as they run the flat-colour baseline.
    """

    # one network evaluation per step (src/runtime/renderer.py: DirectRenderer)
    renderer_kind = "direct"

    @register_to_config
    def __init__(
        self,
        *,
        image_channels: int = 3,
        condition_channels: int = 9,
        hidden_channels: int = 64,
        num_blocks: int = 4,
        unshuffle_factor: int = 2,
        residual_condition_channels: tuple[int, ...] | list[int] | None = (0, 1, 2),
    ):
        super().__init__()
        if residual_condition_channels is not None and len(residual_condition_channels) != image_channels:
            raise ValueError("residual_condition_channels must name one condition plane per image channel")
        factor = unshuffle_factor
        self.stem = nn.Sequential(
            nn.PixelUnshuffle(factor),
            nn.Conv2d(condition_channels * factor * factor, hidden_channels, 3, padding=1),
            nn.GELU(approximate="tanh"),
        )
        self.blocks = nn.Sequential(
            *(ResidualConvBlock(hidden_channels, activation="gelu_tanh") for _ in range(num_blocks))
        )
        self.head = nn.Conv2d(hidden_channels, image_channels * factor * factor, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(factor)
        nn.init.zeros_(self.head.weight)  # start as the identity on the flat colour
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_run(cls, config, data) -> RegressionNet:
        """A training run's regression baseline: ``config.model.overrides`` as its arguments (it
        has no size presets) and the run's number of condition channels."""
        return cls(**{**config.model.overrides, "condition_channels": config.conditions.num_channels})

    @classmethod
    def card_description(cls, objective: str) -> list[str]:
        """What a run's model card says this model is (the same for every objective)."""
        return ["A `RegressionNet` renderer."]

    @property
    def frames_per_step(self) -> int:
        return 1  # frames are independent: a step is one frame

    def check_frame_size(self, height: int, width: int) -> None:
        factor = self.config.unshuffle_factor
        if height < 1 or width < 1 or height % factor or width % factor:
            raise ValueError(
                f"frame size {width}x{height} is not a multiple of the unshuffle factor {factor}"
            )

    def frame_size_hint(self) -> str:
        return f"widths and heights that are multiples of {self.config.unshuffle_factor}"

    def compile_inference(self) -> None:
        self.forward_frames = compile_quietly(self.forward_frames)

    def residual_planes(self, cond: Tensor) -> Tensor:
        """The condition planes the output is added to (``n C h w`` -> ``n 3 h w``), or zeros."""
        channels = self.config.residual_condition_channels
        if channels is None:
            return cond.new_zeros(cond.shape[0], self.config.image_channels, *cond.shape[-2:])
        return torch.cat([cond[:, c : c + 1] for c in channels], dim=1)

    def forward_frames(self, cond: Tensor, *, clamp: bool = True) -> Tensor:
        """``n C h w`` encoded conditions of independent frames -> ``n 3 h w`` frames.

        ``clamp`` limits the output to [-1, 1]; training passes ``False`` so that pixels beyond
        the range still get a gradient.
        """
        features = self.blocks(self.stem(cond))  # n hidden h/f w/f
        frames = self.residual_planes(cond) + self.pixel_shuffle(self.head(features))  # n 3 h w
        return frames.clamp(-1.0, 1.0) if clamp else frames

    def forward(self, cond: Tensor, *, clamp: bool = True) -> Tensor:
        """``b t C h w`` encoded conditions -> ``b t 3 h w`` frames in [-1, 1] (one pass per frame)."""
        b, t = cond.shape[:2]
        frames = self.forward_frames(cond.reshape(b * t, *cond.shape[2:]), clamp=clamp)  # (b t) 3 h w
        return frames.reshape(b, t, *frames.shape[1:])
