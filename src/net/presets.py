"""The DiT's sizes (``DIT_PRESETS``, whose table is in ``src/net/dit_sizes.py``) and
``build_dit``: ``build_dit("tiny", window_framelets=2)`` overrides any field.

Presets decode smoothly (bilinear token features + convolutions: no patch-grid seams; measured
in ``src/net/README.md``) and predict a residual on planes 0-2, where the default condition spec puts the albedo;
training builds its model from the run's spec instead (``VelodreamDiT.from_run``).

* ``tiny``: the CPU preset (64x64..96x96 on 2 cores; see ``src/net/README.md`` for timings).
* ``S``: a small GPU model for 128..256 px.
* ``B``: ~100M parameters for GPU pretraining and high-resolution fine-tuning.
* ``dit224``: the bundled DiT, for 224x224 play on a CPU: patch 16 (14x14 tokens), hidden 256,
  4 blocks, window 3, no stem or refinement (their convolutions cost more than the blocks at
  224x224 on a CPU), the smooth decoder at half resolution. It is pretrained at 112x112 and
  fine-tuned at 224x224 (``conf/dit224_*.yaml``); the equal-work benchmark uses its shapes.
  The bundled weights were trained with a modulation layer per block and the full condition
  embedding; ``game/models/BUILD.md`` pins those (``--model.overrides``) to rebuild them.

Every preset builds the lighter block (``modulation="shared"``, ``condition_rank=64``; see
``src/net/dit_sizes.py``).
"""

from __future__ import annotations

from src.common.errors import UserError
from src.net.dit import VelodreamDiT
from src.net.dit_sizes import DIT_PRESETS


def build_dit(preset: str, **overrides) -> VelodreamDiT:
    """A freshly initialised DiT of a named size; keyword arguments override the preset."""
    if preset not in DIT_PRESETS:
        raise UserError(f"unknown DiT preset {preset!r}", f"Choose from {', '.join(DIT_PRESETS)}.")
    return VelodreamDiT(**{**DIT_PRESETS[preset], **overrides})
