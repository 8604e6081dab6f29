"""The settings of the condition augmentations and extractors, apart from the code that runs them.

Only the standard library is imported here, so that a script's ``--help`` (which reads these
dataclasses) does not wait for torch or OpenCV; ``augment.py`` and ``extract.py`` import these
classes back, so ``from src.conditions.augment import AugmentConfig`` keeps working.
"""

from __future__ import annotations

import dataclasses

from src.common.errors import UserError


@dataclasses.dataclass
class AugmentConfig:
    """Probabilities and strength ranges of the training-time condition augmentations."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "pixelate_probability": "[0, 1]",
        "pixelate_factor": "[1, inf)",
        "blur_probability": "[0, 1]",
        "blur_sigma_px": "[0, inf)",
        "posterize_probability": "[0, 1]",
        "posterize_levels": "[2, inf)",
        "noise_probability": "[0, 1]",
        "noise_std": "[0, inf)",
        "clip_probability": "[0, 1]",
        "clip_level": "(0, 1]",
        "quantize_color_probability": "[0, 1]",
        "quantize_color_levels": "[2, inf)",
        "flatten_lighting_probability": "[0, 1]",
        "flatten_lighting_strength": "[0, 1]",
        "banding_probability": "[0, 1]",
        "banding_levels": "[2, inf)",
        "sharpen_probability": "[0, 1]",
        "sharpen_amount": "[0, inf)",
        "flip_probability": "[0, 1]",
        "colour_jitter_probability": "[0, 1]",
        "hue_shift_deg": "[-180, 180]",
        "channel_dropout_probability": "[0, 1]",
        "saturation_factor": "[0, inf)",
        "brightness_factor": "[0, inf)",
        "scale_crop_probability": "[0, 1]",
        "scale_crop_range": "(0, inf)",
    }

    enabled: bool = True
    """apply the augmentations to training clips at all"""
    pixelate_probability: float = 0.2
    """chance per clip of pixelating every channel"""
    pixelate_factor: tuple[float, float] = (1.5, 4.0)
    """(min, max) downsampling factor of the pixelation"""
    blur_probability: float = 0.2
    """chance per clip of a Gaussian blur of every channel"""
    blur_sigma_px: tuple[float, float] = (0.5, 1.5)
    """(min, max) blur sigma in pixels"""
    posterize_probability: float = 0.15
    """chance per clip of posterizing every channel"""
    posterize_levels: tuple[float, float] = (8.0, 32.0)
    """(min, max) levels over [-1, 1] of the posterization"""
    noise_probability: float = 0.3
    """chance per clip of additive Gaussian noise on every channel"""
    noise_std: tuple[float, float] = (0.0, 0.05)
    """(min, max) standard deviation of the noise (encoded units, range [-1, 1])"""
    clip_probability: float = 0.1
    """chance per clip of clipping depth and flow"""
    clip_level: tuple[float, float] = (0.6, 1.0)
    """(min, max) level |x| of depth and flow is clipped to (then rescaled to [-1, 1])"""
    quantize_color_probability: float = 0.4
    """chance per clip of quantising the flat colour (game-style)"""
    quantize_color_levels: tuple[float, float] = (3.0, 10.0)
    """(min, max) levels per colour channel"""
    flatten_lighting_probability: float = 0.3
    """chance per clip of flattening the flat colour's lighting (game-style)"""
    flatten_lighting_strength: tuple[float, float] = (0.3, 1.0)
    """(min, max) share of the smooth shading removed"""
    banding_probability: float = 0.2
    """chance per clip of luminance banding of the flat colour (game-style)"""
    banding_levels: tuple[float, float] = (4.0, 12.0)
    """(min, max) number of luminance bands"""
    sharpen_probability: float = 0.2
    """chance per clip of sharpening the flat colour (game-style)"""
    sharpen_amount: tuple[float, float] = (0.3, 1.0)
    """(min, max) strength of the sharpening"""
    flip_probability: float = 0.0
    """chance per clip of a horizontal mirror of the frames and every condition together
    (flow x and normals x negated)"""
    colour_jitter_probability: float = 0.0
    """chance per clip of one hue, saturation and brightness change applied alike to the frames
    and the flat colour (before encoding)"""
    hue_shift_deg: tuple[float, float] = (-20.0, 20.0)
    """range of the hue rotation about the grey axis, degrees"""
    saturation_factor: tuple[float, float] = (0.7, 1.3)
    """range of the saturation gain (0 = grey, 1 = unchanged)"""
    brightness_factor: tuple[float, float] = (0.75, 1.25)
    """range of the brightness gain"""
    scale_crop_probability: float = 0.0
    """chance per clip that the crop reads a region of another size and resizes it to the crop
    (frames and conditions together; flow in pixels scaled by the resize)"""
    channel_dropout_probability: float = 0.0
    """chance per clip and per channel group (albedo, depth, normals, flow) of blanking it: 0, the
    middle of the encoded range (normals: all facing the camera); one group is always kept"""
    scale_crop_range: tuple[float, float] = (0.7, 1.4)
    """range of the region's side over the crop's side, drawn log-uniformly (< 1 zooms in);
    limited by the frame's size"""


@dataclasses.dataclass
class ExtractConfig:
    """Which extractors turn real frames into G-buffer channels, and their settings."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "depth_batch_size": "[1, inf)",
        "horizon_fraction": "[0, 1]",
        "parallax_weight": "[0, inf)",
        "texture_weight": "[0, inf)",
        "flat_num_colors": "[1, inf)",
        "flat_lighting_strength": "[0, 1]",
        "assumed_fov_y_deg": "(0, 180)",
    }

    flow_backend: str = "dis"
    """optical flow: only "dis" (OpenCV DIS, weight-free)"""
    dis_preset: str = "medium"
    """DIS flow quality: ultrafast | fast | medium"""
    depth_backend: str = "geometric"
    """depth: geometric (weight-free, offline) | parallax (weight-free: motion parallax of a moving
    camera's flow, the geometric prior where it says nothing) | transformers"""
    depth_model: str = "depth-anything/Depth-Anything-V2-Small-hf"
    """transformers depth model: hub id or local folder"""
    depth_model_output: str = "inverse"
    """what the transformers depth model predicts: inverse | metric"""
    depth_batch_size: int = 8
    """frames per batch of the transformers depth model"""
    horizon_fraction: float = 0.4
    """geometric: assumed horizon row as a fraction of the height"""
    parallax_weight: float = 0.0
    """geometric: weight of the motion-parallax cue (measured worse: off)"""
    texture_weight: float = 0.0
    """geometric: weight of the local-texture cue (measured worse: off)"""
    flat_num_colors: int = 12
    """flat colour palette size per video"""
    flat_lighting_strength: float = 0.7
    """flat colour: 0 = keep lighting, 1 = divide it out fully"""
    assumed_fov_y_deg: float = 70.0
    """real video's vertical field of view for normals from depth (the game uses 70)"""

    def __post_init__(self) -> None:
        if self.flow_backend != "dis":
            raise UserError(f"unknown flow backend {self.flow_backend!r}", "Use 'dis'.")
        if self.depth_backend not in ("geometric", "parallax", "transformers"):
            raise UserError(
                f"unknown depth backend {self.depth_backend!r}",
                "Use 'geometric', 'parallax' or 'transformers'.",
            )
