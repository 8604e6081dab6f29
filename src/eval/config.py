"""The eval package's settings, in a module that imports no torch, so ``evaluate --help`` and
``visualize_conditions --help`` answer at once: ``EvaluateConfig`` with the refusals its arguments
alone decide (``check_evaluate_config``, before torch loads), ``VisualizeConditionsConfig`` and
the condition-gap classifier's ``ConditionGapConfig``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from src.common.errors import UserError
from src.common.ranges import check_ranges
from src.conditions.config import ExtractConfig
from src.conditions.spec import ConditionSpec
from src.data.prepared import SPLITS
from src.game.config import check_level
from src.runtime.defaults import DEFAULT_CHECKPOINT, DEFAULT_RENDERER

REFERENCE_HINT = (  # evaluate --reference (src/eval/reference.py)
    "Give held-out real footage of the game's place: a prepared dataset, videos or a folder "
    "(the city reference is ../shared/data/city_videos/city_street_pandaset002_back_reversed.mp4)."
)


@dataclasses.dataclass
class ConditionGapConfig:
    """The condition-gap classifier: patches, network and training schedule."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "patch_size": "[4, inf)",
        "patches_per_frame": "[1, inf)",
        "max_frames": "[2, inf)",
        "train_fraction": "(0, 1)",
        "steps": "[1, inf)",
        "batch_size": "[2, inf)",
        "learning_rate": "(0, inf)",
        "width": "[1, inf)",
        "seed": "[0, inf)",
    }

    patch_size: int = 32
    """side of the square patches the classifier sees, in pixels (capped at the frame's smaller side)"""
    patches_per_frame: int = 12
    """random patches drawn from every frame"""
    max_frames: int = 160
    """frames used from each side at most, evenly spread (a 3000-frame drift ride would not fit in memory)"""
    train_fraction: float = 0.7
    """the first part of each clip's frames trains the classifier; the rest is held out"""
    steps: int = 200
    """optimiser steps per classifier"""
    batch_size: int = 32
    """patches per optimiser step (half real, half game)"""
    learning_rate: float = 3e-3
    """Adam learning rate"""
    width: int = 16
    """channels of the first conv layer (the next two have twice as many)"""
    seed: int = 0
    """seeds the patch positions, the initial weights and the batch order"""


@dataclasses.dataclass
class EvaluateConfig:
    """``evaluate``: score a renderer package on real clips and on a game ride."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "clip_frames": "[2, inf)",
        "num_clips": "[1, inf)",
        "game_frames": "[0, 4096]",  # the ride is held in memory whole: bounded (4096 > FID's 2048)
        "game_offset_frames": "[0, inf)",
        "drift_ride_frames": "[0, 12000]",
        "game_seed": "[0, inf)",
        "steps": "[1, inf)",
        "seed": "[0, inf)",
        "num_threads": "[1, inf)",
    }
    CHOICES = {"split": SPLITS}  # checked when parsed (src/common/ranges.py)

    checkpoint: str = DEFAULT_CHECKPOINT
    """the renderer package: a folder, hf://owner/repo[@revision] or https://...#sha256=..."""
    data: str | None = None
    """a prepared dataset folder, or video files / a folder of videos (prepared at the package's size and fps)"""
    split: str = "val"
    """which frames of the data: val (the held-out end of each video), train, or all (every frame)"""
    clip_frames: int = 16
    """frames per real clip, each rendered from a fresh context (a multiple of 2)"""
    num_clips: int | None = None
    """real clips, evenly spread over the split (default: as many as fit without overlapping)"""
    game_frames: int = 64
    """frames of the game autopilot ride (0: no game ride; at most 4096)"""
    game_offset_frames: int = 0
    """frames of the ride skipped before the scored ones (start later in the ride)"""
    drift_ride_frames: int = 0
    """drift: render one continuous ride of this many frames and score its first and last
    game_frames (game_* and game_late_*, game_drift_* = late / early); 3000 scores frames
    0-63 against 2936-2999. 0: the plain game ride; at most 12000"""
    game_seed: int = 7
    """the seed of the game ride (validation's default ride)"""
    game_level: str | None = None
    """a level file (game/levels/*.yaml) whose world the game ride is on (None: the default street)"""
    steps: int | None = None
    """denoising steps per framelet (default: the package's)"""
    renderer: str = DEFAULT_RENDERER
    """which renderer of the package: default, a bundle's renderer by name (student, dit), or a
    plain package's model class name"""
    backend: str = "torch"
    """torch, ncnn or onnxruntime"""
    device: str = "cpu"
    """cpu, cuda (torch) / vulkan (ncnn), or auto"""
    seed: int = 0
    """the seed of the renderer's noise (real clip i uses seed + i, the game ride seed + 1000)"""
    out: str | None = None
    """where the results go (default: runs/evaluate/<package>-<data>-<split>)"""
    cache_dir: str | None = None
    """where prepared videos and downloaded packages are kept (default: $VELODREAM_CACHE or ~/.cache/velodream)"""
    num_threads: int | None = None
    """CPU threads of torch and of the runtime (ncnn, onnxruntime) (default: torch's own choice)"""
    gap: ConditionGapConfig = dataclasses.field(default_factory=ConditionGapConfig)
    """the classifier behind condition_gap_accuracy (real clips' conditions against the ride's)"""
    reference: str | None = None
    """held-out real footage of the game's place to judge the ride against too (a prepared dataset,
    videos or a folder; every frame): adds the *_to_reference keys (src/eval/reference.py)"""
    feature_metrics: bool = True
    """KID/FID on the standard Inception features and ST-LPIPS (about 0.5 s per frame on a CPU
    core); false leaves those keys null"""


def check_evaluate_config(config: EvaluateConfig) -> None:
    """The refusals the arguments alone decide (before torch loads): the declared ranges and choices
    (also for a config built in code), and these."""
    check_ranges(config)
    if not config.data:
        raise UserError("no --data given", "Give a prepared dataset, video files or a folder of videos.")
    if config.clip_frames % 2:
        raise UserError(f"--clip_frames must be a positive multiple of 2, got {config.clip_frames}")
    if config.drift_ride_frames and config.drift_ride_frames < 2 * config.game_frames:
        raise UserError("--drift_ride_frames must be at least twice --game_frames (two windows to compare)")
    if config.game_frames == 1:
        raise UserError("--game_frames must be 0 (no ride) or at least 2 (the warp error compares frames)")
    if config.reference and not Path(config.reference).exists():
        raise UserError(f"--reference {config.reference} does not exist", REFERENCE_HINT)
    check_level(config.game_level, flag="--game_level")


@dataclasses.dataclass
class VisualizeConditionsConfig:
    """``visualize_conditions``: which real clip and game ride to compare, and where to write."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "start_s": "[0, inf)",
        "game_seed": "[0, inf)",
        "frames": "[2, inf)",
        "fps": "(0, inf)",
        "scale": "[1, inf)",
        "grid_frames": "[1, inf)",
    }

    out: str = "runs/visualize_conditions"
    """the folder for conditions.mp4, conditions_grid.png, histograms.png and domain_gap.json"""
    real_video: str | None = None
    """the real video to encode (None: the embedded bikes.mp4)"""
    start_s: float = 0.0
    """where in the real video the clip starts, in seconds"""
    prepared_dir: str | None = "data/prepared/default"
    """a prepared dataset whose statistics encode both clips, where it exists (else the real clip's own)"""
    game_clip: str | None = None
    """a recorded G-buffer clip folder (None: record an autopilot ride with the game)"""
    game_seed: int = 0
    """the seed of the recorded game ride"""
    game_level: str | None = None
    """a level file (game/levels/*.yaml) whose world the recorded ride is on (None: the default street)"""
    frames: int = 40
    """frames of each clip"""
    resolution: str = "96x96"
    """WIDTHxHEIGHT of both clips"""
    fps: float = 10.0
    """frame rate of both clips (the prepared data's, so flow magnitudes match training)"""
    scale: int = 2
    """upscale factor of the views (nearest neighbour)"""
    grid_frames: int = 4
    """frames of each clip shown in conditions_grid.png"""
    extract: ExtractConfig = dataclasses.field(default_factory=ExtractConfig)
    """the real-video extractors (also those the game-side transforms run on the raster)"""
    depth_sidecar: bool = True
    """take the real video's depth from its <video>.depth.npz (LiDAR/stereo) where it has one, as
    prepare_data does; false: the estimate (to measure what the sidecar changes)"""
    conditions: ConditionSpec = dataclasses.field(default_factory=ConditionSpec)
    """the condition spec both clips are encoded with, game-side transforms included"""
    gap: ConditionGapConfig = dataclasses.field(default_factory=ConditionGapConfig)
    """the real-vs-game condition classifier"""
