"""The DiT's sizes (``DIT_PRESETS``), kept apart from ``src/net/presets.py`` so that
``VelodreamDiT`` can read them without importing the module that builds it; the presets are
described there.

Every row builds the lighter block, ``LIGHTER_BLOCK``: one shared adaLN layer with per-block
offsets (``modulation="shared"``) and the condition embedding factored through 64 values a patch
(``condition_rank=64``). Models built before it (the bundled ``dit`` among them) say
``per_block`` and ``0`` in their config, or nothing (the class defaults), and load as they were.
"""

from __future__ import annotations

LIGHTER_BLOCK: dict = dict(modulation="shared", condition_rank=64)
"""the block every preset builds (``src/net/dit_parts.py``)"""

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
        **LIGHTER_BLOCK,
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
        **LIGHTER_BLOCK,
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
        **LIGHTER_BLOCK,
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
