"""The two conversions between stored frames (``... h w 3`` uint8) and model frames
(``... 3 h w`` float in [-1, 1]), written once."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def frames_from_uint8(frames: np.ndarray | Tensor) -> Tensor:
    """``... h w 3`` uint8 -> ``... 3 h w`` float32 in [-1, 1]."""
    return torch.as_tensor(frames).float().div(127.5).sub(1.0).movedim(-1, -3)


def frames_to_uint8(frames: np.ndarray | Tensor) -> np.ndarray:
    """``... 3 h w`` in [-1, 1] (clipped) -> ``... h w 3`` uint8, rounded to the nearest value."""
    frames = torch.as_tensor(frames).detach().float().clamp(-1, 1)
    return ((frames + 1) * 127.5 + 0.5).to(torch.uint8).movedim(-3, -1).cpu().numpy()
