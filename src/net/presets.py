"""One registry of DiT sizes. ``build_dit("tiny", window_framelets=2)`` overrides any field.

Presets decode smoothly (bilinear token features + convolutions: no patch-grid seams; measured
in ``src/net/README.md``) and predict a residual on planes 0-2, where the default condition spec puts the albedo;
training builds its model from the run's spec instead (``src/train/model_io.py``).

* ``tiny``: the CPU preset (64x64..96x96 on 2 cores; see ``src/net/README.md`` for timings).
* ``S``: a small GPU model for 128..256 px.
* ``B``: ~100M parameters for GPU pretraining and high-resolution fine-tuning.
* ``dit224``: the bundled DiT, for 224x224 play on a CPU: patch 16 (14x14 tokens), hidden 256,
  4 blocks, window 3, no stem or refinement (their convolutions cost more than the blocks at
  224x224 on a CPU), the smooth decoder at half resolution. It is pretrained at 112x112 and
  fine-tuned at 224x224 (``conf/dit224_*.yaml``); the equal-work benchmark uses its shapes.
"""

from __future__ import annotations

from src.common.errors import UserError
from src.net.dit import VelodreamDiT

DIT_PRESETS: dict[str, dict] = {
    "tiny": dict(
        hidden_dim=192,
        num_blocks=6,
        num_heads=3,
        patch_size=8,
        frames_per_framelet=2,
        window_framelets=4,
        max_grid_h=16,
        max_grid_w=16,
        stem_channels=32,
        refine_channels=32,
        residual_condition_channels=(0, 1, 2),
        decoder="smooth",
    ),
    "S": dict(
        hidden_dim=384,
        num_blocks=12,
        num_heads=6,
        patch_size=8,
        frames_per_framelet=2,
        window_framelets=6,
        max_grid_h=32,
        max_grid_w=32,
        stem_channels=64,
        refine_channels=32,
        residual_condition_channels=(0, 1, 2),
        decoder="smooth",
    ),
    "B": dict(
        hidden_dim=640,
        num_blocks=12,
        num_heads=10,
        patch_size=16,
        frames_per_framelet=2,
        window_framelets=8,
        max_grid_h=32,
        max_grid_w=32,
        stem_channels=96,
        refine_channels=48,
        residual_condition_channels=(0, 1, 2),
        decoder="smooth",
    ),
}
DIT_PRESETS["dit224"] = dict(
    DIT_PRESETS["tiny"],
    hidden_dim=256,
    num_blocks=4,
    num_heads=4,
    patch_size=16,
    window_framelets=3,
    stem_channels=0,
    refine_channels=0,
    decoder_scale=2,
    max_grid_h=14,
    max_grid_w=14,
)


def build_dit(preset: str, **overrides) -> VelodreamDiT:
    """A freshly initialised DiT of a named size; keyword arguments override the preset."""
    if preset not in DIT_PRESETS:
        raise UserError(f"unknown DiT preset {preset!r}", f"Choose from {', '.join(DIT_PRESETS)}.")
    return VelodreamDiT(**{**DIT_PRESETS[preset], **overrides})
