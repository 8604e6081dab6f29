"""The student: a recurrent conv U-Net that renders one frame per network evaluation.

Contract (a renderer model of kind "recurrent", ``src/net/models.py``)::

    feedback, state = model.initial_recurrence(batch, height, width)       a new ride
    frame, feedback, state = model.forward_step(cond, feedback, state)     one frame

    cond      b C h w            this frame's encoded G-buffer (src/conditions/encode.py)
    feedback  b 4 H W            the previous output frame (3 planes, [-1, 1]) and the encoded
                                 inverse depth it was drawn over (1 plane)
    state     b S H/f W/f        the ConvGRU state at the bottleneck (f = ``state_stride``)
    frame     b 3 H W            in [-1, 1]; H = upscale * h

Inside one step, everything a frame needs from the past is computed from those tensors:

1. *Warp.* The previous frame and its depth are sampled at ``x - flow(x)`` (backward warp,
   ``F.grid_sample``, which pnnx turns into ncnn's GridSample). The flow comes from the encoded
   flow planes: ``encode`` stores ``sign(g) sqrt(|g|) / flow_scale`` with ``g = flow_px / width``,
   so ``flow_px / width = e |e| flow_scale^2`` with ``e`` the encoded value (clipped beyond
   ``flow_scale``). ``flow_scale`` is the dataset's statistic, stored in the config.
2. *Disocclusion mask* (1 = the history cannot be trusted): where the warped previous depth is
   nearer than this frame's depth by more than ``disocclusion_tolerance`` (encoded units; the
   game's depth test of ``src/conditions/warp.py`` on encoded inverse depth), or where the source
   lies outside the frame. Soft (a clamped ramp), so it stays differentiable and exports as
   plain arithmetic. A new ride's feedback has depth ``EMPTY_HISTORY_DEPTH``, nearer than
   anything, so the first frame is disoccluded everywhere.
3. *Network.* PixelUnshuffle stem over (cond) and (warped frame, mask), a conv encoder with
   skips, a ConvGRU at the bottleneck, a decoder, and a head whose PixelShuffle gives the output
   size (``upscale`` 2: the G-buffer at half the output size). The head predicts a residual on the
   albedo planes and a history weight: ``frame = fresh + w (warped - fresh)`` with
   ``w = sigmoid(logit) (1 - mask)``, so disoccluded pixels never copy history.

Plain 3x3 convolutions only (no depthwise: ncnn's tensor-core kernels cover Convolution), every
tensor rank <= 4, no data-dependent shapes: ``src/net/export_step.py``'s ``RecurrentStep`` traces
``forward_step`` with the pixel grid as a constant. ``forward(cond b t C h w)`` runs a whole
rollout (with optional corrupted feedback for training) in one call, so training can go through
a DDP wrapper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from src.common.errors import UserError
from src.net.compiling import compile_quietly

# the depth plane of a new ride's feedback: nearer than any encoded depth (those lie in [-1, 1]),
# so the depth test marks every pixel as disoccluded and the first frame ignores the history
EMPTY_HISTORY_DEPTH = 2.0
FEEDBACK_CHANNELS = 4  # previous frame (3) + its encoded inverse depth (1)


def pixel_grid(height: int, width: int, *, device=None, dtype=torch.float32) -> Tensor:
    """``1 2 h w``: (x, y) of every pixel centre in ``grid_sample``'s [-1, 1] coordinates
    (``align_corners=False``)."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack([(xs + 0.5) * (2.0 / width) - 1.0, (ys + 0.5) * (2.0 / height) - 1.0])[None]


def flow_fraction_from_encoded(encoded: Tensor, flow_scale: float) -> Tensor:
    """Encoded flow planes -> flow as a fraction of the image width (both components), the
    inverse of ``encode``'s ``sign(g) sqrt(|g|) / flow_scale`` (exact below the clip)."""
    g = encoded * flow_scale
    return g * g.abs()


class ResidualConvBlock(nn.Module):
    """``x + conv(act(conv(x)))``, 3x3 at constant width; ``act`` is SiLU (the student) or tanh-GELU
    (the regression baseline)."""

    def __init__(self, channels: int, *, activation: str = "silu"):
        super().__init__()
        if activation not in ("silu", "gelu_tanh"):
            raise ValueError(f"unknown activation '{activation}'")
        self.activation = activation
        self.conv_in = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_out = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:  # n c h w
        hidden = self.conv_in(x)
        hidden = F.silu(hidden) if self.activation == "silu" else F.gelu(hidden, approximate="tanh")
        return x + self.conv_out(hidden)


class ConvGRU(nn.Module):
    """A convolutional GRU cell (Ballas et al. 2016): ``h' = h + z (n - h)``."""

    def __init__(self, input_channels: int, state_channels: int):
        super().__init__()
        self.gates = nn.Conv2d(input_channels + state_channels, 2 * state_channels, 3, padding=1)
        self.candidate = nn.Conv2d(input_channels + state_channels, state_channels, 3, padding=1)

    def forward(self, x: Tensor, state: Tensor) -> Tensor:
        update, reset = torch.sigmoid(self.gates(torch.cat([x, state], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, reset * state], dim=1)))
        return state + update * (candidate - state)


class StudentUNet(ModelMixin, ConfigMixin):
    """The recurrent U-Net student (see the module docstring for the step's contract)."""

    renderer_kind = "recurrent"

    @register_to_config
    def __init__(
        self,
        *,
        condition_channels: int = 9,
        albedo_channels: tuple[int, ...] | list[int] | None = (0, 1, 2),
        depth_channel: int | None = 3,
        flow_channels: tuple[int, int] | list[int] | None = (7, 8),
        flow_scale: float = 0.1,
        channels: tuple[int, ...] | list[int] = (32, 64, 96),
        blocks_per_level: int = 1,
        state_channels: int = 48,
        unshuffle_factor: int = 2,
        upscale: int = 1,
        disocclusion_tolerance: float = 0.1,
        mask_sharpness: float = 10.0,
        history_logit_init: float = -2.0,
    ):
        super().__init__()
        if albedo_channels is not None and len(albedo_channels) != 3:
            raise ValueError("albedo_channels must name the 3 albedo planes of the condition (or be None)")
        if flow_channels is not None and len(flow_channels) != 2:
            raise ValueError("flow_channels must name the 2 flow planes of the condition (or be None)")
        if upscale not in (1, 2):
            raise ValueError(f"upscale must be 1 or 2, got {upscale}")
        k, u = unshuffle_factor, upscale
        self.unshuffle_cond = nn.PixelUnshuffle(k)
        self.unshuffle_history = nn.PixelUnshuffle(k * u)
        stem_in = condition_channels * k * k + FEEDBACK_CHANNELS * (k * u) ** 2  # warped frame + mask
        self.stem = nn.Conv2d(stem_in, channels[0], 3, padding=1)
        self.encoder = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for level, width in enumerate(channels):
            if level:
                self.downsample.append(nn.Conv2d(channels[level - 1], width, 3, stride=2, padding=1))
            self.encoder.append(nn.Sequential(*(ResidualConvBlock(width) for _ in range(blocks_per_level))))
        self.gru = ConvGRU(channels[-1], state_channels)
        self.fuse = nn.Conv2d(channels[-1] + state_channels, channels[-1], 3, padding=1)
        self.merge = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in range(len(channels) - 2, -1, -1):
            self.merge.append(nn.Conv2d(channels[level + 1] + channels[level], channels[level], 3, padding=1))
            self.decoder.append(
                nn.Sequential(*(ResidualConvBlock(channels[level]) for _ in range(blocks_per_level)))
            )
        self.head = nn.Conv2d(channels[0], 4 * (k * u) ** 2, 3, padding=1)  # residual rgb + history logit
        self.pixel_shuffle = nn.PixelShuffle(k * u)
        nn.init.zeros_(
            self.head.weight
        )  # an untrained student returns its albedo, mixed with a little history
        with torch.no_grad():
            self.head.bias.zero_()
            self.head.bias[3 * (k * u) ** 2 :] = history_logit_init

    # ---- a training run's model ------------------------------------------------------------

    @classmethod
    def from_run(cls, config, data) -> StudentUNet:
        """A training run's student (``config.model``: preset + overrides), told where the run's
        spec puts albedo, depth and flow, and the dataset's flow scale (``data.stats``: it decodes
        the encoded flow to warp its last frame)."""
        slices = config.conditions.slices()
        albedo, depth, flow = slices.get("albedo"), slices.get("depth"), slices.get("flow")
        overrides = {
            "albedo_channels": list(range(albedo.start, albedo.stop)) if albedo is not None else None,
            "depth_channel": depth.start if depth is not None else None,
            "flow_channels": list(range(flow.start, flow.stop)) if flow is not None else None,
            "flow_scale": data.stats.flow_scale,
            **config.model.overrides,
            "condition_channels": config.conditions.num_channels,
        }
        return build_student(config.model.preset, **overrides)

    @classmethod
    def card_description(cls, objective: str) -> list[str]:
        """What a run's model card says this model is (the same for every objective)."""
        return [
            "A recurrent U-Net student: one network evaluation per frame, over the G-buffer, its previous",
            "frame warped by the game's motion vectors, a disocclusion mask and a small recurrent state;",
            "distilled from the teacher's rollouts on real clips and game rides, the real frames, a PatchGAN",
            "and a temporal loss under the game's exact flow.",
        ]

    # ---- the renderer-model contract -------------------------------------------------------

    @property
    def frames_per_step(self) -> int:
        return 1

    @property
    def upscale(self) -> int:
        """Output pixels per condition pixel along each axis (1 or 2)."""
        return int(self.config.upscale)

    @property
    def detail_band(self) -> tuple[list[int] | None, int]:
        """(the albedo's condition planes, the scale below which its frames lack detail): it
        renders from conditions at 1/``upscale`` size (``src/runtime/renderer.py``)."""
        return self.config.albedo_channels, self.upscale

    @property
    def state_stride(self) -> int:
        """Output pixels per state cell along each axis."""
        return self.config.upscale * self.config.unshuffle_factor * 2 ** (len(self.config.channels) - 1)

    def check_frame_size(self, height: int, width: int) -> None:
        stride = self.state_stride
        if height < stride or width < stride or height % stride or width % stride:
            raise ValueError(f"frame size {width}x{height} is not a multiple of {stride}")

    def frame_size_hint(self) -> str:
        return f"widths and heights that are multiples of {self.state_stride}"

    def compile_inference(self) -> None:
        self.forward_step = compile_quietly(self.forward_step)

    def recurrence_shapes(
        self, batch: int, height: int, width: int
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes of ``feedback`` and ``state`` for ``height`` x ``width`` output frames."""
        stride = self.state_stride
        return (batch, FEEDBACK_CHANNELS, height, width), (
            batch,
            self.config.state_channels,
            height // stride,
            width // stride,
        )

    def initial_recurrence(
        self, batch: int, height: int, width: int, *, device=None, dtype=None
    ) -> tuple[Tensor, Tensor]:
        """``feedback`` and ``state`` of a new ride (no history: see ``EMPTY_HISTORY_DEPTH``)."""
        parameter = next(self.parameters())
        device, dtype = device or parameter.device, dtype or parameter.dtype
        feedback_shape, state_shape = self.recurrence_shapes(batch, height, width)
        return initial_feedback(feedback_shape, device=device, dtype=dtype), torch.zeros(
            state_shape, device=device, dtype=dtype
        )

    # ---- one frame --------------------------------------------------------------------------

    def warp_history(
        self, cond: Tensor, feedback: Tensor, *, grid: Tensor | None = None, aspect: float | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The previous frame warped into this one, the disocclusion mask, and this frame's depth
        at the output size: ``b 3 H W``, ``b 1 H W`` (1 = no usable history), ``b 1 H W``.

        ``grid`` (``1 2 H W``, ``pixel_grid``) and ``aspect`` (W / H) are computed from the shapes
        when not given; the export passes them as constants."""
        cfg = self.config
        b, _, height, width = feedback.shape
        grid = (
            pixel_grid(height, width, device=feedback.device, dtype=feedback.dtype) if grid is None else grid
        )
        aspect = width / height if aspect is None else aspect
        if cfg.flow_channels is not None:
            fx, fy = cfg.flow_channels
            flow_x = flow_fraction_from_encoded(cond[:, fx : fx + 1], cfg.flow_scale)  # of the width
            flow_y = flow_fraction_from_encoded(cond[:, fy : fy + 1], cfg.flow_scale)
            # grid units: 2 / W per pixel in x and 2 / H in y; flow_y is a fraction of the width
            shift = torch.cat([flow_x * 2.0, flow_y * (2.0 * aspect)], dim=1)  # b 2 h w
            if cfg.upscale > 1:
                shift = F.interpolate(shift, scale_factor=cfg.upscale, mode="nearest")
            source = grid - shift  # b 2 H W
        else:
            source = grid.expand(b, -1, -1, -1)
        outside = ((source.abs() - 1.0) * cfg.mask_sharpness).clamp(0.0, 1.0)
        mask = torch.maximum(outside[:, 0:1], outside[:, 1:2])
        warped = F.grid_sample(
            feedback, source.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border", align_corners=False
        )  # b 4 H W
        if cfg.depth_channel is not None:
            depth = cond[:, cfg.depth_channel : cfg.depth_channel + 1]
            if cfg.upscale > 1:
                depth = F.interpolate(depth, scale_factor=cfg.upscale, mode="nearest")
            nearer = ((warped[:, 3:4] - depth - cfg.disocclusion_tolerance) * cfg.mask_sharpness).clamp(
                0.0, 1.0
            )
            mask = torch.maximum(mask, nearer)
        else:
            depth = warped[:, 3:4] * 0.0
        return warped[:, :3], mask, depth

    def forward_step(
        self,
        cond: Tensor,  # b C h w
        feedback: Tensor,  # b 4 H W
        state: Tensor,  # b S H/f W/f
        *,
        grid: Tensor | None = None,
        aspect: float | None = None,
        clamp: bool = True,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One frame: ``(frame b 3 H W, feedback b 4 H W, state)``. ``clamp=False`` returns the
        frame unclamped (training: out-of-range pixels keep a gradient); the feedback is clamped."""
        warped, mask, depth = self.warp_history(cond, feedback, grid=grid, aspect=aspect)
        x = torch.cat(
            [self.unshuffle_cond(cond), self.unshuffle_history(torch.cat([warped, mask], dim=1))], dim=1
        )
        x = F.silu(self.stem(x))
        skips = []
        for level, blocks in enumerate(self.encoder):
            if level:
                x = F.silu(self.downsample[level - 1](x))
            x = blocks(x)
            skips.append(x)
        state = self.gru(x, state)
        x = F.silu(self.fuse(torch.cat([x, state], dim=1)))
        for merge, blocks, skip in zip(self.merge, self.decoder, reversed(skips[:-1])):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = blocks(F.silu(merge(torch.cat([x, skip], dim=1))))
        out = self.pixel_shuffle(self.head(x))  # b 4 H W
        fresh = self.albedo(cond) + out[:, :3]
        history_weight = torch.sigmoid(out[:, 3:4]) * (1.0 - mask)
        frame = fresh + history_weight * (warped - fresh)
        clamped = frame.clamp(-1.0, 1.0)
        return (clamped if clamp else frame), torch.cat([clamped, depth], dim=1), state

    def albedo(self, cond: Tensor) -> Tensor:
        """The albedo planes at the output size (``b 3 H W``; zeros without albedo)."""
        cfg = self.config
        if cfg.albedo_channels is None:
            base = cond[:, :1].mul(0.0).expand(-1, 3, -1, -1)
        else:
            base = torch.cat([cond[:, c : c + 1] for c in cfg.albedo_channels], dim=1)
        if cfg.upscale > 1:
            base = F.interpolate(base, scale_factor=cfg.upscale, mode="bilinear", align_corners=False)
        return base

    # ---- a whole rollout (training, tests) ----------------------------------------------------

    def forward(
        self,
        cond: Tensor,  # b t C h w
        *,
        feedback_noise: Tensor | None = None,  # b t 3 H W, added to the frame fed back into frame i
        feedback_blur: Tensor | None = None,  # b t in [0, 1]: how much of a 3x3 blur replaces it
        clamp: bool = True,
    ) -> Tensor:
        """Render a clip from a new ride's state: ``b t 3 H W``. The corruption arguments make the
        fed-back frames worse than the output (training against accumulating errors); the
        caller draws them, so the rollout is a pure function of its inputs."""
        b, t, _, h, w = cond.shape
        u = self.config.upscale
        feedback, state = self.initial_recurrence(b, h * u, w * u, device=cond.device, dtype=cond.dtype)
        frames = []
        for i in range(t):
            if i and (feedback_noise is not None or feedback_blur is not None):
                rgb, depth = feedback[:, :3], feedback[:, 3:]
                if feedback_blur is not None:
                    blurred = F.avg_pool2d(rgb, 3, stride=1, padding=1, count_include_pad=False)
                    rgb = rgb + feedback_blur[:, i, None, None, None] * (blurred - rgb)
                if feedback_noise is not None:
                    rgb = rgb + feedback_noise[:, i]
                feedback = torch.cat([rgb, depth], dim=1)
            frame, feedback, state = self.forward_step(cond[:, i], feedback, state, clamp=clamp)
            frames.append(frame)
        return torch.stack(frames, dim=1)


def initial_feedback(shape: tuple[int, ...], *, device=None, dtype=torch.float32) -> Tensor:
    """A new ride's ``feedback`` (``b 4 H W``): a grey frame over depth ``EMPTY_HISTORY_DEPTH``."""
    feedback = torch.zeros(shape, device=device, dtype=dtype)
    feedback[:, 3] = EMPTY_HISTORY_DEPTH
    return feedback


# One registry of student sizes; ``build_student("S", channels=[...])`` overrides any field.
# Output pixels per state cell: upscale * unshuffle_factor * 2 ** (levels - 1) (8 for 3 levels).
STUDENT_PRESETS: dict[str, dict] = {
    # tests and quick CPU runs
    "tiny": dict(channels=(16, 24, 32), blocks_per_level=1, state_channels=16),
    # the CPU real-time student (224^2 on 2 cores; upscale 2 renders from a 112^2 G-buffer)
    "S": dict(channels=(32, 64, 96), blocks_per_level=1, state_channels=48),
    # a GPU student for 320^2 and above
    "M": dict(channels=(48, 96, 160), blocks_per_level=2, state_channels=96),
}


def build_student(preset: str, **overrides) -> StudentUNet:
    """A freshly initialised student of a named size; keyword arguments override the preset."""
    if preset not in STUDENT_PRESETS:
        raise UserError(f"unknown student preset {preset!r}", f"Choose from {', '.join(STUDENT_PRESETS)}.")
    return StudentUNet(**{**STUDENT_PRESETS[preset], **overrides})
