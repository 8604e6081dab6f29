"""Settings of the evaluation measures that a script's flags declare, in a module that imports no
torch, so ``evaluate --help`` and ``visualize_conditions --help`` answer at once."""

from __future__ import annotations

import dataclasses

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
