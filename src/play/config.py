"""``play_game``'s settings: the game's (``PlayConfig``) plus the neural renderer's. No torch,
OpenGL or window is imported here, so ``play_game --help`` answers at once."""

from __future__ import annotations

import dataclasses

from src.game.config import PlayConfig
from src.runtime.defaults import DEFAULT_CHECKPOINT


@dataclasses.dataclass
class RideConfig(PlayConfig):
    """``play_game``: the game options plus the neural renderer's."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "steps": "[1, inf)",
        "threads": "[1, inf)",
    }
    CHOICES = {"gbuffer_size": ("renderer", "frame")}  # checked when parsed (src/common/ranges.py)

    renderer: str = "neural"
    """neural (the package's default renderer), a renderer of a bundle by name (student, dit), or
    raster (plain G-buffer colours); Tab cycles the bundle's renderers, side by side and raster"""
    checkpoint: str = DEFAULT_CHECKPOINT
    """a package directory, hf://owner/repo[@rev] or https://...#sha256=..."""
    steps: int | None = None
    """denoising steps per framelet (default: the package's)"""
    backend: str = "torch"
    """torch, ncnn or onnxruntime"""
    device: str = "cpu"
    """cpu, cuda (torch, onnxruntime-gpu) / vulkan (ncnn), or auto"""
    dtype: str = "float32"
    """float32, bfloat16 or float16"""
    compile: bool = False
    """torch.compile the model (torch backend)"""
    threads: int | None = None
    """CPU threads of the model's runtime (torch, ncnn or onnxruntime; default: one fewer than the
    cores, at least one, so the game's own loop keeps a core)"""
    gbuffer_size: str = "renderer"
    """the G-buffers' size: renderer (the size a package's one renderer makes full use of: 112x112
    for a student upscaling to 224x224 without the full-size albedo's detail band) or frame (the
    neural frame's size, as a bundle's renderers always get, so that Tab can show each)"""
    cache_dir: str | None = None
    """where downloaded packages go (default ~/.cache/velodream)"""
